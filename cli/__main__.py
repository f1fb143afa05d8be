from lazysi.cli import main

raise SystemExit(main())
