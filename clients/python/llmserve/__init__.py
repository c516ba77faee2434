"""llmserve's Python client: the generated stubs of every service (`llmserve.<svc>.v1`)
and a thin wrapper over them.

    import llmserve
    print(llmserve.Client("127.0.0.1:50051").complete("Once upon a time").text)
"""

from llmserve import errors
from llmserve._core import NO_RETRY, RetryPolicy
from llmserve.aio import AsyncClient, AsyncJobWatch, AsyncTextStream
from llmserve.client import Client, JobWatch, TextStream
from llmserve.errors import LlmserveError

__version__ = "1.0.0"
"""The major version is the proto package version (`llmserve.*.v1`)."""
API_VERSION = "v1"

__all__ = [
           "API_VERSION",
           "NO_RETRY",
           "AsyncClient",
           "AsyncJobWatch",
           "AsyncTextStream",
           "Client",
           "JobWatch",
           "LlmserveError",
           "RetryPolicy",
           "TextStream",
           "__version__",
           "errors",
]
