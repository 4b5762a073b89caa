from owntrain.cli import main

main()
