"""`python -m ml.anchors`: see `ml.anchors.compare`."""

from ml.anchors.compare import main

raise SystemExit(main())
