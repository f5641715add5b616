"""The feedback service: users' opinions on predictions, and their RGPD rights over them."""
