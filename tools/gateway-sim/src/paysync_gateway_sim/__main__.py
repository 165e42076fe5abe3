"""`python -m paysync_gateway_sim`: the CLI."""

from paysync_gateway_sim.cli import main

main()
