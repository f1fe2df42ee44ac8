from holosc.cli import main

main()
