"""``python -m mmcourse <command>``: the command line lives in ``mmcourse.cli`` (notebook 00)."""

import sys

from mmcourse.cli.main import main
from mmcourse.cli.parser import build_parser

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
