from topotrigger.cli import main

main()
