"""The instance metadata service: what code on an instance reads at 169.254.169.254, served per instance."""
