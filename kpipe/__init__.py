"""kpipe: serverless image-processing pipelines on Knative.

The package holds the floor every other package stands on (:mod:`kpipe.core`)
and the tools on top: the CLI and its API client, ``kpipe deploy`` and the
one-machine twin of the cluster (:mod:`kpipe.local`). This file imports
nothing, so importing the floor loads nothing of the tools.
"""

__version__ = "0.1.0"
