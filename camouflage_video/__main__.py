from camouflage_video.cli import main

raise SystemExit(main())
