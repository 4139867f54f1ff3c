import sys

from vim_deploy.cli import main

sys.exit(main())
