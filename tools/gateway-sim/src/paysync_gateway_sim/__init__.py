"""A stateful simulator of the Stripe, Paystack and Daraja APIs, with signed webhooks and faults.

`create_app` (in `paysync_gateway_sim.app`) builds the server; `SimulatorClient` drives a running one.
"""

from paysync_gateway_sim.client import SimulatorClient, SimulatorError
from paysync_gateway_sim.config import SimConfig

__all__ = ["SimConfig", "SimulatorClient", "SimulatorError"]
