"""The one-machine twin of the cluster, which ``kpipe up`` runs.

The local broker and its host in the router's process, the S3 server with
its notifier and gateway, the Triton launcher and the model weights it
serves, the local keys, and the stack with its supervisor. Nothing below the
tools imports this package.
"""
