"""`python -m service`: run the server (service/server/launch.py)."""

import sys

from service.server.launch import main

if __name__ == "__main__":
    sys.exit(main())
