from flowpolicy.cli import main

raise SystemExit(main())
