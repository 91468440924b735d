from drumbeat.cli import main

main()
