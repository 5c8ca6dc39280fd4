"""Fetching media behind URLs: the fetcher (HTTP and yt-dlp), the guard proxy and the URL guard's address rules."""
