"""``python -m sandbox.sink``: the SMTP sink alone (it lives in ``sandbox.smtp.sink``), for a class or another app."""

import sys

from sandbox.smtp.sink import main

if __name__ == "__main__":
    sys.exit(main())
