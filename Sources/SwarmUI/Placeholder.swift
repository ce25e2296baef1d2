import AsyncHTTPClient
import WSClient
import SwarmCore
