import Hummingbird
import ServiceLifecycle
import Subprocess
import Crypto
import Prometheus
import _NIOFileSystem
import SwarmUI
import JobProtocol
