#!/bin/sh
exec python3 /opt/app/server.py
