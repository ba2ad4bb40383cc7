"""Entry script of the gateway example: ``python run.py --csv ... --jsonl ...``.

See README.md for the workloads and ``gateway/cli.py`` for the options.
"""

import sys

from gateway.cli import main

if __name__ == "__main__":
    sys.exit(main())
