"""Server endpoint plugin: `reuseport:PORT[:interface=ADDRESS]`, for hitless restarts."""

from sillyproxy._reuseport import ReusePortParser

reuseport = ReusePortParser()
