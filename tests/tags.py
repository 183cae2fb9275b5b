"""The tag names the tests check, in one place: MLflow's own, and those the importer writes (README, "What is kept")."""

# MLflow's
PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"
USER_TAG = "mlflow.user"
LOG_MODEL_HISTORY_TAG = "mlflow.log-model.history"  # classic models: its entries name their run

# the importer's: provenance (always written) and source values (with --import-source-tags)
ARCHIVE_TAG_PREFIX = "mlflow_archive."
SOURCE_RUN_TAG = ARCHIVE_TAG_PREFIX + "source_run_id"
SOURCE_EXPERIMENT_TAG = ARCHIVE_TAG_PREFIX + "source_experiment_id"
SOURCE_MODEL_ID_TAG = ARCHIVE_TAG_PREFIX + "source_model_id"
SOURCE_MODEL_NAME_TAG = ARCHIVE_TAG_PREFIX + "source_model_name"
SOURCE_VERSION_TAG = ARCHIVE_TAG_PREFIX + "source_version"
SOURCE_TAG_PREFIX = ARCHIVE_TAG_PREFIX + "source."
SOURCE_CREATION_TAG = SOURCE_TAG_PREFIX + "creation_time"
SOURCE_UPDATE_TAG = SOURCE_TAG_PREFIX + "last_update_time"
# The importer marks its runs partial until all their data is in; a run left partial by an
# interrupted import is deleted and marked abandoned by the next import, which starts over.
IMPORT_STATE_TAG = ARCHIVE_TAG_PREFIX + "import_state"
ABANDONED = "abandoned"
