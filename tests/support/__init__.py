"""What the tests start and make, shared by every tier: real servers on 127.0.0.1 (the backend, media, hostile
sources, webhook receivers, a local Hub, PostgreSQL, Redis) and media written with PyAV and ffmpeg."""
