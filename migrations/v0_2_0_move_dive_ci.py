"""0.2.0, before the merge: move the team's .dive-ci to .config/dive-ci.yaml.

Copier would otherwise delete .dive-ci (the template no longer has it) and add its own
.config/dive-ci.yaml, losing the thresholds the team tuned. A no-op without .dive-ci, or when
.config/dive-ci.yaml already exists. Runs in the generated repo (Copier's working directory).
"""

from pathlib import Path


def main() -> None:
    old, new = Path(".dive-ci"), Path(".config/dive-ci.yaml")
    if old.is_file() and not new.exists():
        new.parent.mkdir(exist_ok=True)
        old.replace(new)


if __name__ == "__main__":
    main()
