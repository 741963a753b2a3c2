# data.mk - installed data: config example, nginx config, www, crontab
