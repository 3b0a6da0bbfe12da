import sys

from rawtrace.cli.command_line import main

sys.exit(main())
