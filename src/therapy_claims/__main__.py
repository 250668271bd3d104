import sys

from therapy_claims.cli import main

sys.exit(main())
