from logwarden.cli import main

raise SystemExit(main())
