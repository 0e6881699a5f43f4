"""`python -m headstart.kernels.kernelspec -f <connection file>`: what kernel.json runs."""

from headstart.kernels.kernelspec import main

main()
