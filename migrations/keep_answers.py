"""Every update, first after the merge: undo an update that silently dropped a stored answer.

    keep_answers.py NEW_ANSWERS_JSON GIVEN_DATA_JSON

`copier update --defaults` replaces a stored answer that this version's validators refuse (a
service named `json`, say) with the question's default, without a word: the repo's services
could silently become the template's. Copier has computed the answers only by the `after`
stage, so this compares them there with the ones the last commit stored: when a stored answer
changed although nobody gave a new value (`-d KEY=VALUE`), it puts the work tree back as it
was (Copier updates only a clean tree, so everything uncommitted is Copier's) and stops the
update, in one line.
"""

import json
import subprocess
import sys

import yaml


def dropped(stored: dict, new: dict, given: dict) -> list[str]:
    """The stored answers that `new` changes although `given` holds no value for them."""
    return [
        key
        for key, value in stored.items()
        if not key.startswith("_") and key in new and key not in given and new[key] != value
    ]


def main(new: str, given: str) -> int:
    last = subprocess.run(
        ["git", "show", "HEAD:.copier-answers.yml"], capture_output=True, text=True, check=True
    )
    stored = yaml.safe_load(last.stdout) or {}
    keys = dropped(stored, json.loads(new), json.loads(given))
    if not keys:
        return 0
    subprocess.run(["git", "reset", "--quiet", "--hard", "HEAD"], check=True)
    subprocess.run(["git", "clean", "--quiet", "-d", "--force"], check=True)
    shown = ", ".join(f"{key}={json.dumps(stored[key])[:80]}" for key in keys)
    print(
        f"error: this template version refuses the stored answer {shown}: give a new value"
        f" with -d {keys[0]}=... (the update was undone)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
