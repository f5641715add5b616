"""Deployment: container images, docker compose, Kubernetes, and the checks keeping them true."""
