import sys

from bench.aio.runner import main

sys.exit(main())
