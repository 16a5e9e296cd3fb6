"""The HTTP/SSE agent that runs inside every machine and drives one ClaudeSDKClient."""
