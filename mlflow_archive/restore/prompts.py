"""Prompts: registered models and versions as MLflow's prompt registry stores them, numbers, times, aliases and tags kept.

MLflow keeps a prompt as a registered model tagged ``mlflow.prompt.is_prompt``, and a version as a
model version whose tags hold the template, its type, the response format and the model configuration;
the archive's columns for those become the tags again, byte for byte. The rest is the registry's restore.
"""

from __future__ import annotations

from mlflow.entities.model_registry.model_version_status import ModelVersionStatus
from mlflow.prompt import constants as prompt

from ..archive import Member
from . import json_column, registry

SECTION = "prompts"
PROMPT_TAG = {"key": prompt.IS_PROMPT_TAG_KEY, "value": "true"}


def version_row(row: dict) -> dict:
    """A ``prompt_versions`` row as the ``model_versions`` row MLflow's create_prompt_version makes."""
    template = json_column(row, "template_json", f"Version {row['version']} of prompt {row['name']!r}")
    chat = not isinstance(template, str)  # a chat template's tag is its JSON text, a text template's the text itself
    tags = [
        PROMPT_TAG,
        {"key": prompt.PROMPT_TEXT_TAG_KEY, "value": row["template_json"] if chat else template},
        {"key": prompt.PROMPT_TYPE_TAG_KEY, "value": prompt.PROMPT_TYPE_CHAT if chat else prompt.PROMPT_TYPE_TEXT},
    ]
    for key, column in ((prompt.RESPONSE_FORMAT_TAG_KEY, "response_format_json"),
                        (prompt.PROMPT_MODEL_CONFIG_TAG_KEY, "model_config_json")):
        if row[column] is not None:
            tags.append({"key": key, "value": row[column]})
    return {
        "name": row["name"], "version": row["version"], "creation_timestamp": row["creation_timestamp"],
        "last_updated_timestamp": row["last_updated_timestamp"], "description": row["commit_message"],
        # The archive carries no source or run for prompt versions: a server stores MLflow clients' placeholder
        # source and an empty run ID (its request default).
        "user_id": row["user_id"], "current_stage": "None", "source": prompt._CLIENT_PROMPT_SOURCE_PLACEHOLDER,
        "run_id": "", "run_link": None, "status": ModelVersionStatus.to_string(ModelVersionStatus.READY),
        "status_message": None, "model_id": None, "tags": tags + row["tags"],
    }


class Restorer(registry.Restorer):
    parents, versions = "prompts", "prompt_versions"
    what = "prompt {!r}"

    def _locate(self, versions: list[dict], rows: list[dict]) -> None:
        pass  # MLflow's placeholder source, the only one its server takes for a prompt version; no files

    def _read(self, member: Member) -> list[dict]:
        rows = member.read_table().to_pylist()
        if member.stem == self.versions:
            return [version_row(r) for r in rows]
        return [{**r, "tags": [PROMPT_TAG, *r["tags"]]} for r in rows]
