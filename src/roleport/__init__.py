"""roleport: AWS instance profiles, EC2 associations, STS and IMDS on one local server."""

__version__ = "0.1.0"
