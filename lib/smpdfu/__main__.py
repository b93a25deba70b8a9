from smpdfu_host.cli import main

main()
