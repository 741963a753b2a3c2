# data.mk - installed data: config example, nginx config, www, crontab

# The documented example configuration: $(sysconfdir)/crosstalk.conf.example.
# Programs read $(sysconfdir)/crosstalk.conf; copying the example there is
# left to the administrator (make install never overwrites a configuration).
dist_sysconf_DATA = crosstalk.conf.example

# nginx: the server block to include in a system nginx, and the standalone
# template scripts/demo and the tests render. $(pkgdatadir)/nginx/
nobase_dist_pkgdata_DATA = \
	nginx/crosstalk.conf \
	nginx/crosstalk.standalone.conf.in

# The comparison page, served by nginx (and crosstalkd): $(pkgdatadir)/www,
# which is WWWDIR, the default www_root. Every file of www/ must be listed
# here to be installed and distributed.
nobase_dist_pkgdata_DATA += \
	www/index.html \
	www/app.css \
	www/app.js \
	www/js/api.js \
	www/js/chart.js \
	www/js/metrics.js \
	www/js/pane.js \
	www/js/transports.js

# The crontab entry of crosstalk-backup, ready to copy to /etc/cron.d (it is
# not put there by make install: that would start backups every minute).
dist_pkgdata_DATA = scripts/crosstalk-backup.cron

# Starts the whole stack from the build tree (not installed).
dist_noinst_SCRIPTS += scripts/demo

# The installed copies name the installed paths: the www root in the nginx
# server block, and the bin directory in the crontab's PATH.
install-data-hook:
	f='$(DESTDIR)$(pkgdatadir)/nginx/crosstalk.conf'; \
	sed -e 's|^\(    root \)/usr/share/crosstalk/www;|\1$(pkgdatadir)/www;|' \
		"$$f" > "$$f.tmp" && mv "$$f.tmp" "$$f"
	f='$(DESTDIR)$(pkgdatadir)/crosstalk-backup.cron'; \
	sed -e 's|^PATH=/usr/local/bin:|PATH=$(bindir):|' \
		"$$f" > "$$f.tmp" && mv "$$f.tmp" "$$f"
