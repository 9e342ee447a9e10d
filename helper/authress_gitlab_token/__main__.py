from authress_gitlab_token.cli import main

raise SystemExit(main())
