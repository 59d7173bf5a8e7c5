import sys

from mlfem.cli import main

sys.exit(main())
