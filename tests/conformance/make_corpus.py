"""Write the conformance corpus (``<case>.mlar`` and ``verdicts.json``) into this folder.

    PYTHONPATH=.:tests python tests/conformance/make_corpus.py

The cases are defined in tests/corpus.py. Existing files are rewritten: unlike the golden archives,
the corpus may be regenerated, as long as each case keeps testing the rule its verdict names.
"""

from corpus import write_corpus

if __name__ == "__main__":
    verdicts = write_corpus()
    refused = sum(v["verdict"] == "refuse" for v in verdicts.values())
    print(f"wrote {len(verdicts)} cases: {len(verdicts) - refused} to accept, {refused} to refuse")
