"""Local simulators of the parties outside yztc: the eight internet companies'
account-count APIs, the four operators' real-name check, Alipay's OpenAPI
gateway and an SMS centre, all driven by one scenario JSON file.

Each simulator is an aiohttp app made by its module's `create_app(scenario, ...)`;
`python -m simulators` serves all four.
"""
