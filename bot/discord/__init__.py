"""The Discord front end: turns Discord events into engine calls and engine results into messages.

`client.create_bot` builds the bot, `client.run_bot` starts it (`verbatim run`); one cog per feature
lives in `cogs/`, and `formatting` keeps everything the bot sends within Discord's limits.
"""
