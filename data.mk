# data.mk - installed data: config example, nginx config, www, crontab,
# systemd units

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

# Files that name installed paths are written from a template by make, with
# the paths make has now (those configure chose, or make's command line):
# @bindir@, @sysconfdir@, @pkgdatadir@ and @SPAWN_FCGI@ (from configure).
# Like src/common/paths.h they are made on every make but written only when
# a path changed (a tree that is up to date is not written to, so a
# read-only checkout that was built runs scripts/demo).
ct_subst = sed -e 's|@bindir[@]|$(bindir)|g' \
	-e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	-e 's|@pkgdatadir[@]|$(pkgdatadir)|g' \
	-e 's|@SPAWN_FCGI[@]|$(SPAWN_FCGI)|g'
# Writes $$ct_new (the text, made by the rule) to $@ unless $@ has it.
ct_update = if [ -f $@ ] && [ "$$ct_new" = "$$(cat $@)" ]; then :; \
	else echo "  GEN      $@"; printf '%s\n' "$$ct_new" >$@; fi
ct_generated = scripts/crosstalk-backup.cron \
	scripts/crosstalkd@.service \
	scripts/crosstalk-fcgi.service
$(ct_generated): FORCE
	@$(MKDIR_P) scripts; \
	ct_new=$$($(ct_subst) <$(srcdir)/$@.in) && $(ct_update)
DISTCLEANFILES += $(ct_generated)
EXTRA_DIST += $(ct_generated:=.in)

# The crontab entry of crosstalk-backup, ready to copy to /etc/cron.d (it is
# not put there by make install: that would start backups every minute).
nodist_pkgdata_DATA = scripts/crosstalk-backup.cron

# The systemd units: crosstalkd@PORT (one daemon per port) and the FastCGI
# pool under spawn-fcgi, with the sysusers.d entry of the user they (and
# the cron entry) run as. $(systemdsystemunitdir): configure
# --with-systemdsystemunitdir, default $(prefix)/lib/systemd/system.
if HAVE_SYSTEMD_UNITS
nodist_systemdsystemunit_DATA = scripts/crosstalkd@.service \
	scripts/crosstalk-fcgi.service
dist_sysusers_DATA = scripts/sysusers.d/crosstalk.conf
else
EXTRA_DIST += scripts/sysusers.d/crosstalk.conf
endif

# Starts the whole stack from the build tree (not installed).
dist_noinst_SCRIPTS += scripts/demo

# The installed copies name the installed paths: the example configuration
# its own directory and the www root, the nginx server block the www root.
install-data-hook:
	f='$(DESTDIR)$(sysconfdir)/crosstalk.conf.example'; \
	sed -e 's|/usr/local/etc/|$(sysconfdir)/|g' \
		-e 's|/usr/local/share/crosstalk/|$(pkgdatadir)/|g' \
		-e 's|^# with the default prefix)|# as installed)|' \
		"$$f" > "$$f.tmp" && mv "$$f.tmp" "$$f"
	f='$(DESTDIR)$(pkgdatadir)/nginx/crosstalk.conf'; \
	sed -e 's|^\(    root \)/usr/share/crosstalk/www;|\1$(pkgdatadir)/www;|' \
		"$$f" > "$$f.tmp" && mv "$$f.tmp" "$$f"
