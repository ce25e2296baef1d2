import Hummingbird
import Crypto
import Prometheus
import JobProtocol
import JobStore
