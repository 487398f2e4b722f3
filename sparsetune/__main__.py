"""`python -m sparsetune ...` is the `sparsetune` command."""

if __name__ == "__main__":
    from .cli import main

    main()
