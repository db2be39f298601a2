from ai_agents.cli import main

raise SystemExit(main())
