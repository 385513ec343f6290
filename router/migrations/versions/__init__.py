"""The router's schema revisions, oldest first: ``NNNN_<slug>.py``, each naming the one before."""
