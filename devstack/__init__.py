"""The local development stack behind `make run`: every service, PostgreSQL, Prometheus and
Alertmanager on this machine, without Docker (`python -m devstack --help`)."""
