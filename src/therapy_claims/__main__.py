import sys

from therapy_claims.cli import main

if __name__ == "__main__":
    sys.exit(main())
