from maildesk.cli import main

# The guard keeps worker processes started with "spawn" from running the command again.
if __name__ == "__main__":
    raise SystemExit(main())
