"""The viewer: who is signed in, which account the page shows, and what they may do there."""
