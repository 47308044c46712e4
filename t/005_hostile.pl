# Hostile roles.  Roles with exactly the README's grants for each duty
# (writer, uploader, watcher, receiver: the message endpoint's, granted
# receive_event() alone) and the owner of the worker's database (dbowner)
# attack the extension:
#
#   1. they plant look-alike functions, operators and aggregates (now(),
#      "=", unnest(), min(), "greatest", ...) in their own schemas and in
#      public, then use every path under every search_path ordering, while
#      the worker runs and re-plans; an administrator calls the extension's
#      functions with an attacker's schema first.  No planted object may ever
#      run as anyone but its planter, and no attacker may become superuser;
#      1b. the same for shipping information and verify: the writer (granted
#      the shipping tables and import_shipping) writes shipping rows under
#      every ordering and with its search_path as a role setting; the
#      uploader (granted verify_shopping_info and upload_shipping_info)
#      calls them, committed and rolled back; the worker sends and verifies.
#      Roles without EXECUTE are refused; no role may steer them by SET,
#      role settings or connection options (appid, api_base_url,
#      verify_delay); shipping bodies are each their own order's; the worker
#      is idle once nothing is due;
#      1c. the same for WeChat's order shipping management service
#      (shopping_upload.trade_managed on, reconcile_interval 2 s, payments
#      registered at the stand-in): the writer writes its shipments (unified,
#      split in two steps, changed after completion, signed for), the
#      receiver passes push events to receive_event(), the uploader calls
#      upload_trade_shipping, get_trade_order, notify_confirm_receive and
#      reship, under every ordering, while the worker sends the uploads, the
#      re-ships, get_order and the receipt reminders; an administrator calls
#      every SECURITY DEFINER function of the service with an attacker's
#      schema first.  Roles without EXECUTE are refused each new function; no
#      role reads or writes trade_state, trade_apps, events or
#      delivery_companies beyond its grants, nor steers the service by SET,
#      role or database settings or connection options (payment_wait,
#      reconcile_interval, trade_managed, appid, api_base_url);
#   2. a database owner pre-creates the extension's schema before CREATE
#      EXTENSION;
#   3. they hunt for the app secret and the access tokens in every view,
#      setting, table, function, error message, and in the server log
#      (also at log_min_messages = debug5 while the secret is changed); the
#      service's too: events, trade_state, trade_apps, the audit rows of
#      kinds trade_shipping, trade_order and trade_confirm, the messages of
#      its failing calls;
#   4. session settings (appid, timeouts) must not steer
#      upload_shopping_info(); made-up appids must not fill the token cache
#      nor receive the secret;
#   5. DROP DATABASE by a role that may not drop the worker's database must
#      not stop the worker; ALTER DATABASE ... SET by the database owner must
#      not steer the worker.
#
# Every attack prints one diag line: "HELD" (the defence held) or "HOLE".
# Planted objects record who ran them in public.pwned and in the server log
# (lines "PWNED planter=... current_user=..."), and try ALTER ROLE <planter>
# SUPERUSER.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use HTTP::Tiny;
use JSON::PP;
use Time::HiRes qw(time usleep);
use SuStub;

my $t_start = time;
my $dir = PostgreSQL::Test::Utils::tempdir();

# every secret is random, so that finding one anywhere is no coincidence
sub rnd { return join '', map { sprintf '%08x', int(rand(2**32)) } 1 .. 3; }
my $SECRET = 'confsecret' . rnd();     # shopping_upload.secret / secret_file
my $ACCT_SECRET = 'acctsecret' . rnd();    # shopping_upload.accounts, wxacct
my $HANDED_SECRET = 'handedsecret' . rnd(); # only to get wxhanded's token
my $ROTATED1 = 'rotatedconf' . rnd();    # written to postgresql.conf late
my $ROTATED2 = 'rotatedfile' . rnd();    # written to a secret file late

my $stub = SuStub->start(dir => $dir,
	accounts => "wxtestappid:$SECRET,wxacct:$ACCT_SECRET,wxhanded:$HANDED_SECRET");

# --- the node: the worker serves 'postgres'; settings not defined (yet) by
# the code under test are added only if the server starts with them
my $secret_file = "$dir/app_secret";
write_secret_file($secret_file, $SECRET);

my $base_conf = <<"EOC";
shared_preload_libraries = 'shopping_upload'
listen_addresses = ''
shopping_upload.api_base_url = '${\ $stub->url}'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret = '$SECRET'
shopping_upload.timeout = '3s'
shopping_upload.lease = '4s'
shopping_upload.retry_base_delay = '50ms'
shopping_upload.retry_max_delay = '200ms'
shopping_upload.verify_delay = '1s'
shopping_upload.trade_managed = on
shopping_upload.reconcile_interval = '2s'
log_line_prefix = '%m [%p] %b %u\@%d '
log_statement = 'all'
EOC
my @guarded = (
	"shopping_upload.allow_insecure_http = on",
	"shopping_upload.secret_file = '$secret_file'");

my $node = PostgreSQL::Test::Cluster->new('hostile');
$node->init;
$node->append_conf('postgresql.conf', $base_conf . join("\n", @guarded) . "\n");
if (!$node->start(fail_ok => 1))
{
	diag 'the node did not start with ' . join(', ', @guarded)
	  . '; starting without them';
	remove_conf_lines(@guarded);
	$node->start;
}

# The test's own statements run with a pinned search_path, so that they never
# call a planted object themselves; each hostile session SETs its own.
$ENV{PGOPTIONS} = '-c search_path=pg_catalog,pg_temp';

sub sql { return $node->safe_psql($_[1] // 'postgres', $_[0]); }

# statements that hold a secret or a token: kept out of log_statement, since
# the log is searched for them at the end
sub quiet_sql
{
	local $ENV{PGOPTIONS} = $ENV{PGOPTIONS} . ' -c log_statement=none';
	return sql(@_);
}

# a session as $role: (rc, stdout, stderr); errors do not stop it
sub as_role
{
	my ($role, $sql, %o) = @_;
	local $ENV{PGOPTIONS} = $o{pgoptions} if defined $o{pgoptions};
	my ($rc, $out, $err) = $node->psql($o{db} // 'postgres', $sql,
		extra_params => [ '-U', $role ],
		on_error_stop => 0);
	return ($rc, $out // '', $err // '');
}

# psql exits 0 after a failed statement unless ON_ERROR_STOP: read stderr
sub errors_of { return join ' | ', grep { /ERROR|FATAL/ } split /\n/, $_[0]; }
sub failed { return $_[0] =~ /ERROR|FATAL/; }

my $superuser = sql('SELECT current_user');
my %defined = map {
	$_ => sql("SELECT current_setting('shopping_upload.$_', true) IS NOT NULL")
	  eq 't'
} qw(allow_insecure_http secret_file);
for my $s (sort keys %defined)
{
	diag "shopping_upload.$s is "
	  . ($defined{$s} ? 'defined' : 'not defined by this build: its part is skipped');
}
remove_conf_lines($guarded[1]) unless $defined{secret_file};
remove_conf_lines($guarded[0]) unless $defined{allow_insecure_http};
$node->reload;

sql('CREATE EXTENSION shopping_upload');

my @report;

# records an attack and its outcome: a test, and one diag line
sub check
{
	my ($held, $name, $detail) = @_;
	$detail //= '';
	$detail =~ s/\s+/ /g;
	$detail = substr($detail, 0, 400) . '...' if length $detail > 400;
	diag(($held ? 'HELD ' : 'HOLE ') . $name . ($detail ne '' ? " -- $detail" : ''));
	push @report, [ $held, $name ];
	return ok($held, $name);
}

sub worker_pid
{
	return sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'");
}

# polls $query until it returns $want, for at most $secs seconds
sub wait_for
{
	my ($query, $want, $secs) = @_;
	my $end = time + $secs;
	while (1)
	{
		my $v = sql($query);
		return 1 if $v eq $want;
		return 0 if time > $end;
		usleep(100_000);
	}
}

# no order waiting for the worker (or leased by a claim)
sub settle
{
	my ($secs) = @_;
	return wait_for("SELECT count(*) FROM shopping_upload.order_state
		WHERE state IN ('pending', 'uploading')", '0', $secs // 8);
}

sub write_secret_file
{
	my ($path, $content) = @_;
	open my $fh, '>', $path or die "cannot write $path: $!";
	print $fh "$content\n";
	close $fh;
	chmod 0600, $path;
}

sub remove_conf_lines
{
	my @lines = @_;
	my $conf = $node->data_dir . '/postgresql.conf';
	my $text = slurp_file($conf);
	for my $l (@lines)
	{
		$text =~ s/^\Q$l\E\n//mg;
	}
	open my $fh, '>', $conf or die "cannot write $conf: $!";
	print $fh $text;
	close $fh;
}

my $json = JSON::PP->new->utf8->canonical;

# ---------------------------------------------------------------------
# Roles with the README's grants, their schemas, public writable by all
# (as in clusters upgraded from 14), the database owned by dbowner
# ---------------------------------------------------------------------
my @attackers = qw(writer uploader watcher dbowner receiver);
sql(<<'EOS');
CREATE ROLE writer LOGIN;
CREATE ROLE uploader LOGIN;
CREATE ROLE watcher LOGIN;
CREATE ROLE dbowner LOGIN;
CREATE ROLE receiver LOGIN;
GRANT USAGE ON SCHEMA shopping_upload TO writer, uploader, watcher, receiver;
GRANT INSERT, UPDATE, DELETE, SELECT ON shopping_upload.orders,
	shopping_upload.sub_orders, shopping_upload.items TO writer;
GRANT EXECUTE ON FUNCTION shopping_upload.import_order(jsonb, text) TO writer;
GRANT EXECUTE ON FUNCTION shopping_upload.upload_shopping_info(bigint) TO uploader;
-- shipping information and verify (README, "Privileges")
GRANT INSERT, UPDATE, DELETE, SELECT ON shopping_upload.shippings,
	shopping_upload.shipments, shopping_upload.shipment_items TO writer;
GRANT EXECUTE ON FUNCTION shopping_upload.import_shipping(jsonb, text) TO writer;
GRANT EXECUTE ON FUNCTION shopping_upload.verify_shopping_info(bigint),
	shopping_upload.upload_shipping_info(bigint) TO uploader;
-- a writer of orders only: no right on the shipping tables
CREATE ROLE orders_writer LOGIN;
GRANT USAGE ON SCHEMA shopping_upload TO orders_writer;
GRANT INSERT, UPDATE, DELETE, SELECT ON shopping_upload.orders,
	shopping_upload.sub_orders, shopping_upload.items TO orders_writer;
GRANT EXECUTE ON FUNCTION shopping_upload.import_order(jsonb, text) TO orders_writer;
GRANT SELECT ON shopping_upload.order_status, shopping_upload.stats,
	shopping_upload.audit TO watcher;
-- the order shipping management service (README, "Privileges"): calls by
-- hand for the uploader, its tables for the watcher, push events for the
-- role of the merchant's message endpoint alone
GRANT EXECUTE ON FUNCTION shopping_upload.upload_trade_shipping(bigint),
	shopping_upload.reship(bigint), shopping_upload.get_trade_order(bigint),
	shopping_upload.notify_confirm_receive(bigint, timestamptz) TO uploader;
GRANT SELECT ON shopping_upload.trade_state, shopping_upload.events TO watcher;
GRANT EXECUTE ON FUNCTION shopping_upload.receive_event(jsonb) TO receiver;
CREATE SCHEMA evil_writer AUTHORIZATION writer;
CREATE SCHEMA evil_uploader AUTHORIZATION uploader;
CREATE SCHEMA evil_watcher AUTHORIZATION watcher;
CREATE SCHEMA evil_dbowner AUTHORIZATION dbowner;
CREATE SCHEMA evil_receiver AUTHORIZATION receiver;
GRANT CREATE ON SCHEMA public TO PUBLIC;
ALTER DATABASE postgres OWNER TO dbowner;
EOS

# where planted code reports who ran it (the superuser's, in each database)
my $pwn_infra = <<'EOS';
CREATE TABLE public.pwned (
	at timestamptz DEFAULT clock_timestamp(),
	planter text, current_user_ text, session_user_ text, fn text,
	backend text, got_super boolean);
GRANT INSERT ON public.pwned TO PUBLIC;
-- escalation is tried until the search_path attacks are judged
CREATE TABLE public.pwn_mode (escalate boolean);
INSERT INTO public.pwn_mode VALUES (true);
GRANT SELECT ON public.pwn_mode TO PUBLIC;
CREATE FUNCTION public.pwn_note(planter text, fn text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $pwn$
DECLARE
	k text := 'pwn.k' || md5(planter || '|' || current_user || '|' || fn);
	be text;
	got boolean := false;
BEGIN
	-- once per backend, planter, runner and object
	IF coalesce(current_setting(k, true), '') <> '' THEN
		RETURN;
	END IF;
	PERFORM set_config(k, '1', false);
	SELECT backend_type INTO be FROM pg_stat_activity WHERE pid = pg_backend_pid();
	IF (SELECT escalate FROM public.pwn_mode LIMIT 1) THEN
		BEGIN
			EXECUTE format('ALTER ROLE %I SUPERUSER', planter);
			got := true;
		EXCEPTION WHEN others THEN
			got := false;
		END;
	END IF;
	RAISE LOG 'PWNED planter=% current_user=% session_user=% fn=% backend=% superuser_granted=%',
		planter, current_user, session_user, fn, replace(coalesce(be, '?'), ' ', '_'), got;
	BEGIN
		INSERT INTO public.pwned (planter, current_user_, session_user_, fn, backend, got_super)
			VALUES (planter, current_user, session_user, fn, be, got);
	EXCEPTION WHEN others THEN
		RAISE LOG 'PWNED-UNRECORDED fn=% error=%', fn, SQLERRM;
	END;
END
$pwn$;
EOS
sql($pwn_infra);

# ---------------------------------------------------------------------
# The planted objects: every built-in the extension's SQL names (src/*.c
# and the script), as exact-type overloads that beat a polymorphic or
# coerced pg_catalog candidate, and as same-signature look-alikes that win
# where the schema precedes pg_catalog
# ---------------------------------------------------------------------
my @plant_items;
{
	my @fns = (
		[ 'now', '', 'timestamptz', 0, 'pg_catalog.now()' ],
		[ 'clock_timestamp', '', 'timestamptz', 0, 'pg_catalog.clock_timestamp()' ],
		[ 'statement_timestamp', '', 'timestamptz', 0, 'pg_catalog.statement_timestamp()' ],
		[ 'transaction_timestamp', '', 'timestamptz', 0, 'pg_catalog.transaction_timestamp()' ],
		[ 'date_trunc', 'text, timestamptz', 'timestamptz', 0, 'pg_catalog.date_trunc($1, $2)' ],
		[ 'make_interval', 'secs float8', 'interval', 0, 'pg_catalog.make_interval(secs => $1)' ],
		[ 'make_interval', 'secs int4', 'interval', 0, 'pg_catalog.make_interval(secs => $1)' ],
		[ 'current_setting', 'text', 'text', 0, 'pg_catalog.current_setting($1)' ],
		[ 'current_setting', 'text, bool', 'text', 0, 'pg_catalog.current_setting($1, $2)' ],
		[ 'jsonb_build_object', 'text, text', 'jsonb', 0, 'pg_catalog.jsonb_build_object($1, $2)' ],
		[ 'md5', 'text', 'text', 0, 'pg_catalog.md5($1)' ],
		# GREATEST is syntax: these must never be what greatest(...) runs
		[ 'greatest', 'int8, int8', 'int8', 0, 'CASE WHEN $1 OPERATOR(pg_catalog.>) $2 THEN $1 ELSE $2 END' ],
		[ 'greatest', 'timestamptz, timestamptz', 'timestamptz', 0, 'CASE WHEN $1 OPERATOR(pg_catalog.>) $2 THEN $1 ELSE $2 END' ],
		(map { [ 'unnest', "${_}[]", $_, 1, 'pg_catalog.unnest($1)' ] }
			  qw(int8 int4 text timestamptz bool jsonb float8)),
		[ 'unnest', 'anyarray', 'anyelement', 1, 'pg_catalog.unnest($1)' ],
		# the order shipping management service's statements (queue_trade.c,
		# upload.c, shipping.c, trade_app.c) and receive_event()
		[ 'left', 'text, int4', 'text', 0, 'pg_catalog.left($1, $2)' ],
		[ 'char_length', 'text', 'int4', 0, 'pg_catalog.char_length($1)' ],
		[ 'octet_length', 'text', 'int4', 0, 'pg_catalog.octet_length($1)' ],
		[ 'jsonb_typeof', 'jsonb', 'text', 0, 'pg_catalog.jsonb_typeof($1)' ],
		[ 'to_timestamp', 'float8', 'timestamptz', 0, 'pg_catalog.to_timestamp($1)' ],
		[ 'hashint8', 'int8', 'int4', 0, 'pg_catalog.hashint8($1)' ],
	);
	push @plant_items, { kind => 'fn', name => $_->[0], args => $_->[1],
		ret => $_->[2], setof => $_->[3], expr => $_->[4] } for @fns;
	my @ops = (
		[ '+', 'int8', 'int8', 'int8' ],
		[ '+', 'int4', 'int4', 'int4' ],
		[ '+', 'int8', 'int4', 'int8' ],    # version + 1
		[ '+', 'timestamptz', 'interval', 'timestamptz' ],
		[ '-', 'timestamptz', 'interval', 'timestamptz' ],
		[ '-', 'timestamptz', 'timestamptz', 'interval' ],
		[ '=', 'int8', 'int8', 'bool' ],
		[ '=', 'int8', 'int4', 'bool' ],
		[ '=', 'text', 'text', 'bool' ],
		[ '=', 'timestamptz', 'timestamptz', 'bool' ],
		# "=" on integers makes ON CONFLICT ... WHERE order_number_type = 1
		# miss its index: planted in one schema only (evil_watcher), so that
		# the others show what runs rather than what breaks
		[ '=', 'int4', 'int4', 'bool', 'evil_watcher' ],
		[ '<>', 'xid', 'int4', 'bool' ],
		[ '<>', 'int4', 'int4', 'bool' ],
		[ '<>', 'int8', 'int8', 'bool' ],
		[ '<>', 'text', 'text', 'bool' ],
		(map { [ $_, 'timestamptz', 'timestamptz', 'bool' ] } qw(< <= > >=)),
		[ '>', 'float8', 'int4', 'bool' ],    # verify_delay > 0
		# the service's: its bodies and WeChat's answers as jsonb,
		# finish_count >= 1, unshipped_resends < 2, attempts - 1, item_desc
		[ '->', 'jsonb', 'text', 'jsonb' ],
		[ '->>', 'jsonb', 'text', 'text' ],
		[ '-', 'jsonb', 'text', 'jsonb' ],
		[ '=', 'jsonb', 'jsonb', 'bool' ],
		[ '<>', 'jsonb', 'jsonb', 'bool' ],
		[ '>=', 'int4', 'int4', 'bool' ],
		[ '<', 'int4', 'int4', 'bool' ],
		[ '-', 'int4', 'int4', 'int4' ],
		[ '||', 'text', 'text', 'text' ],
	);
	push @plant_items, { kind => 'op', name => $_->[0], left => $_->[1],
		right => $_->[2], ret => $_->[3], only => $_->[4] } for @ops;
	push @plant_items, { kind => 'agg', name => 'min' }, { kind => 'agg', name => 'count' },
	  { kind => 'agg', name => 'string_agg' };
}

sub qt { my ($s) = @_; $s =~ s/'/''/g; return "'$s'"; }
sub pgt
{
	my ($t) = @_;
	return join ', ', map {
		my $x = $_;
		$x =~ s/^\s+|\s+$//g;
		if ($x =~ /^(\w+) (\w+\[?\]?)$/) { "$1 pg_catalog.$2" }
		elsif ($x eq '') { '' }
		else { "pg_catalog.$x" }
	} split /,/, $t;
}

# the SQL that plants, as $planter, the items (filtered by $want) in $schema
sub plant_sql
{
	my ($planter, $schema, $want) = @_;
	my $qs = qq{"$schema"};
	my @s;
	my $n = 0;
	for my $it (@plant_items)
	{
		next if $want && !$want->($it);
		next if $it->{only} && $it->{only} ne $schema;
		$n++;
		if ($it->{kind} eq 'fn')
		{
			(my $sig = $it->{args}) =~ s/\b(secs) //g;
			$sig =~ s/\s+//g;
			my $tag = "$schema.$it->{name}($sig)";
			my $body = $it->{setof}
			  ? "RETURN QUERY SELECT $it->{expr}"
			  : "RETURN $it->{expr}";
			push @s, sprintf(
				q{CREATE FUNCTION %s."%s"(%s) RETURNS %s%s LANGUAGE plpgsql AS $pwn$ BEGIN PERFORM public.pwn_note(%s, %s); %s; END $pwn$},
				$qs, $it->{name}, pgt($it->{args}), $it->{setof} ? 'SETOF ' : '',
				pgt($it->{ret}), qt($planter), qt($tag), $body);
		}
		elsif ($it->{kind} eq 'op')
		{
			my $tag = "$schema.$it->{name}($it->{left},$it->{right})";
			my $f = "$qs.pwn_op_$n";
			push @s, sprintf(
				q{CREATE FUNCTION %s(pg_catalog.%s, pg_catalog.%s) RETURNS pg_catalog.%s LANGUAGE plpgsql AS $pwn$ BEGIN PERFORM public.pwn_note(%s, %s); RETURN $1 OPERATOR(pg_catalog.%s) $2; END $pwn$},
				$f, $it->{left}, $it->{right}, $it->{ret}, qt($planter), qt($tag), $it->{name});
			push @s, sprintf(
				q{CREATE OPERATOR %s.%s (LEFTARG = pg_catalog.%s, RIGHTARG = pg_catalog.%s, FUNCTION = %s)},
				$qs, $it->{name}, $it->{left}, $it->{right}, $f);
		}
		elsif ($it->{name} eq 'string_agg')
		{
			my $tag = "$schema.string_agg(text,text)";
			push @s, sprintf(
				q{CREATE FUNCTION %s.pwn_sagg_step(pg_catalog.text, pg_catalog.text, pg_catalog.text) RETURNS pg_catalog.text LANGUAGE plpgsql AS $pwn$ BEGIN PERFORM public.pwn_note(%s, %s); IF $2 IS NULL THEN RETURN $1; END IF; IF $1 IS NULL THEN RETURN $2; END IF; RETURN pg_catalog.textcat(pg_catalog.textcat($1, $3), $2); END $pwn$},
				$qs, qt($planter), qt($tag));
			push @s, sprintf(
				q{CREATE AGGREGATE %s.string_agg(pg_catalog.text, pg_catalog.text) (SFUNC = %s.pwn_sagg_step, STYPE = pg_catalog.text)},
				$qs, $qs);
		}
		elsif ($it->{name} eq 'count')
		{
			my $tag = "$schema.count(*)";
			push @s, sprintf(
				q{CREATE FUNCTION %s.pwn_count_step(pg_catalog.int8) RETURNS pg_catalog.int8 LANGUAGE plpgsql AS $pwn$ BEGIN PERFORM public.pwn_note(%s, %s); RETURN $1 OPERATOR(pg_catalog.+) 1; END $pwn$},
				$qs, qt($planter), qt($tag));
			push @s, sprintf(
				q{CREATE AGGREGATE %s.count(*) (SFUNC = %s.pwn_count_step, STYPE = pg_catalog.int8, INITCOND = '0')},
				$qs, $qs);
		}
		else
		{
			my $tag = "$schema.min(timestamptz)";
			push @s, sprintf(
				q{CREATE FUNCTION %s.pwn_min_step(pg_catalog.timestamptz, pg_catalog.timestamptz) RETURNS pg_catalog.timestamptz LANGUAGE plpgsql AS $pwn$ BEGIN PERFORM public.pwn_note(%s, %s); IF $1 IS NULL THEN RETURN $2; END IF; IF $2 IS NULL OR $1 OPERATOR(pg_catalog.<) $2 THEN RETURN $1; END IF; RETURN $2; END $pwn$},
				$qs, qt($planter), qt($tag));
			push @s, sprintf(
				q{CREATE FUNCTION %s.pwn_min_final(pg_catalog.timestamptz) RETURNS pg_catalog.timestamptz LANGUAGE plpgsql AS $pwn$ BEGIN PERFORM public.pwn_note(%s, %s); RETURN $1; END $pwn$},
				$qs, qt($planter), qt($tag));
			push @s, sprintf(
				q{CREATE AGGREGATE %s.min(pg_catalog.timestamptz) (SFUNC = %s.pwn_min_step, STYPE = pg_catalog.timestamptz, FINALFUNC = %s.pwn_min_final)},
				$qs, $qs, $qs);
		}
	}
	return (join(";\n", @s) . ";\n", $n);
}

sub plant
{
	my ($planter, $schema, $want, $db) = @_;
	my ($sqltext, $n) = plant_sql($planter, $schema, $want);
	my ($rc, $out, $err) = as_role($planter, $sqltext, db => $db);
	my @errors = grep { /ERROR/ } split /\n/, $err;
	diag "$planter planted $n objects in $schema"
	  . ($db ? " (database $db)" : '')
	  . (@errors ? ': ' . scalar(@errors) . " failed: $errors[0]" : '');
	return !@errors;
}

my $is_public_by_writer = sub { $_[0]{name} eq 'unnest' || $_[0]{kind} eq 'agg' };
my $planted_ok = 1;
$planted_ok = plant($_, "evil_$_") && $planted_ok for qw(writer uploader watcher dbowner receiver);
# public: writer (CREATE granted to PUBLIC) and the database owner
$planted_ok = plant('writer', 'public', $is_public_by_writer) && $planted_ok;
$planted_ok = plant('dbowner', 'public', sub { !$is_public_by_writer->(@_) }) && $planted_ok;
# "$user" of the superuser: the database owner may create that schema
my ($rc0, $o0, $e0) = as_role('dbowner', qq{CREATE SCHEMA "$superuser"});
if (!failed($e0))
{
	$planted_ok = plant('dbowner', $superuser) && $planted_ok;
}
else
{
	diag "dbowner could not create schema \"$superuser\": $e0";
}
ok($planted_ok, 'every attacker planted its objects');
{
	# the detector works: a planted object its planter calls is recorded
	as_role('writer', 'SET search_path = "evil_writer", pg_catalog; SELECT now(); SELECT clock_timestamp();');
	my $self = sql("SELECT count(*) FROM public.pwned WHERE planter = 'writer' AND current_user_ = 'writer'");
	cmp_ok($self, '>', 0, 'a planted object called by its planter is recorded in public.pwned (the detector works)');
}

# ---------------------------------------------------------------------
# Credentials: the configured secret, an account with a secret, a handed-in
# token; the token is fetched from the stand-in as a platform would
# ---------------------------------------------------------------------
my $HANDED_TOKEN;
{
	my $r = HTTP::Tiny->new(timeout => 10)->post($stub->url . '/cgi-bin/stable_token',
		{
			headers => { 'Content-Type' => 'application/json' },
			content => $json->encode({ grant_type => 'client_credential',
				appid => 'wxhanded', secret => $HANDED_SECRET })
		});
	$HANDED_TOKEN = $json->decode($r->{content})->{access_token};
	die 'no handed token from the stand-in' unless $HANDED_TOKEN;
}
quiet_sql("INSERT INTO shopping_upload.accounts (appid, secret) VALUES ('wxacct', '$ACCT_SECRET')");
eval {
	quiet_sql("SELECT shopping_upload.set_access_token('wxhanded', '$HANDED_TOKEN', now() + interval '2 hours')");
	1;
} or quiet_sql("INSERT INTO shopping_upload.accounts (appid, access_token, token_expires_at)
	VALUES ('wxhanded', '$HANDED_TOKEN', now() + interval '2 hours')");

# ---------------------------------------------------------------------
# 1. Every path under every search_path ordering
# ---------------------------------------------------------------------
my @orderings = (
	[ 'own schema first', sub { qq{"evil_$_[0]", pg_catalog, public} } ],
	[ 'public first', sub { 'public, pg_catalog' } ],
	[ 'default', sub { '"$user", public' } ],
	[ 'pg_catalog first', sub { qq{pg_catalog, "evil_$_[0]", public} } ],
);

sub order_insert_sql
{
	my ($id, $tx) = @_;
	$tx //= '42000';    # the transaction_id's prefix
	return (
		"INSERT INTO shopping_upload.orders (order_id, order_number_type, transaction_id, openid)
			VALUES ($id, 2, '$tx$id', 'o-$id')",
		"INSERT INTO shopping_upload.sub_orders (order_id, sub_order_no, merchant_order_no, link_type, link_url)
			VALUES ($id, 0, 'm-$id', 'URL', 'https://shop.example.com/o/$id')",
		"INSERT INTO shopping_upload.items (order_id, sub_order_no, item_no, merchant_item_id, name,
			unit_price, quantity, image_url, link_type, link_url)
			VALUES ($id, 0, 0, 'i-0', 'Tea', 100, 1, '{https://img.example.com/t.png}', 'URL', 'https://shop.example.com/i/0'),
			($id, 0, 1, 'i-1', 'Cup', 250, 2, '{https://img.example.com/c.png}', 'URL', 'https://shop.example.com/i/1')");
}

sub import_call
{
	my ($no, $appid) = @_;
	my $j = SuStub::order_json(out_trade_no => $no, $appid ? (appid => $appid) : ());
	return "SELECT shopping_upload.import_order('$j'::pg_catalog.jsonb"
	  . ($appid ? ", '$appid'::pg_catalog.text" : '') . ')';
}

# shipping rows for an order of order_insert_sql (items i-0, i-1): split
# delivery, two shipments of one item each; tracking numbers hold the id
sub shipping_insert_sql
{
	my ($id) = @_;
	return (
		"INSERT INTO shopping_upload.shippings (order_id, delivery_mode) VALUES ($id, 2)",
		"INSERT INTO shopping_upload.shipments (order_id, shipment_no, tracking_no, express_company)
			VALUES ($id, 0, 'SF$id-a', 'SF'), ($id, 1, 'YT$id-b', 'YTO')",
		"INSERT INTO shopping_upload.shipment_items (order_id, shipment_no, item_no, merchant_item_id)
			VALUES ($id, 0, 0, 'i-0'), ($id, 1, 0, 'i-1')");
}

# a unified-delivery shipping body for the order import_call($no) stored;
# its tracking number holds the order's out_trade_no
sub ship_json
{
	my ($no, $tag) = @_;
	return $json->encode(
		{
			order_key => { order_number_type => 1, mchid => '1230000109', out_trade_no => $no },
			payer => { openid => 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' },
			upload_time => '2026-01-01T00:00:00+08:00',
			delivery_mode => 1,
			shipping_list => [ { tracking_no => "SF$no" . ($tag // ''), express_company => 'SF' } ]
		});
}

sub ship_import_call
{
	my ($no, $tag) = @_;
	return "SELECT shopping_upload.import_shipping('" . ship_json($no, $tag) . "'::pg_catalog.jsonb)";
}

# no shipping information waiting for the worker (or leased by a claim)
sub settle_ship
{
	my ($secs) = @_;
	return wait_for("SELECT count(*) FROM shopping_upload.shipping_state
		WHERE state IN ('pending', 'uploading')", '0', $secs // 8);
}

my %upload_order;    # round base -> order for the uploader
my $round = 0;
for my $o (@orderings)
{
	my ($oname, $pathf) = @$o;
	$round++;
	my $b = 100000 + 1000 * $round;

	# writer: plain INSERT/UPDATE/DELETE, autocommit and in transactions,
	# import_order new and replacing
	my $wpath = $pathf->('writer');
	my $w = "SET search_path = $wpath;\n" . join(";\n",
		order_insert_sql($b + 1),
		'BEGIN', order_insert_sql($b + 2),
		"UPDATE shopping_upload.items SET quantity = 3 WHERE order_id OPERATOR(pg_catalog.=) " . ($b + 1),
		'COMMIT',
		"UPDATE shopping_upload.orders SET openid = 'o-upd' WHERE order_id OPERATOR(pg_catalog.=) " . ($b + 2),
		order_insert_sql($b + 3),
		"DELETE FROM shopping_upload.orders WHERE order_id OPERATOR(pg_catalog.=) " . ($b + 3),
		'BEGIN', order_insert_sql($b + 4), 'SAVEPOINT s',
		"DELETE FROM shopping_upload.items WHERE order_id OPERATOR(pg_catalog.=) " . ($b + 4),
		'ROLLBACK TO s', 'COMMIT',
		'BEGIN', order_insert_sql($b + 5), 'ROLLBACK',
		import_call("IMP${b}A"),
		import_call("IMP${b}A"),    # same order key: replaces it
		'BEGIN', import_call("IMP${b}B", 'wxacct'), import_call("IMP${b}B", 'wxacct'), 'COMMIT',
		'SET shopping_upload.auto_upload = off', order_insert_sql($b + 9),
		'RESET shopping_upload.auto_upload') . ";\n";
	my ($rc, $out, $err) = as_role('writer', $w);
	my $imported = sql("SELECT count(*) FROM shopping_upload.orders WHERE out_trade_no IN ('IMP${b}A', 'IMP${b}B')");
	my $rows = sql("SELECT count(*) FROM shopping_upload.orders WHERE order_id IN ("
		  . join(',', map { $b + $_ } 1 .. 5, 9) . ')');
	check($imported eq '2' && $rows eq '4' && errors_of($err) eq '',
		"writer: plain writes and import_order work with search_path $wpath ($oname)",
		errors_of($err));

	# uploader: upload_shopping_info, autocommit and in a transaction
	settle(6);
	my $upath = $pathf->('uploader');
	($rc, $out, $err) = as_role('uploader', "SET search_path = $upath;
		SELECT errcode, errmsg FROM shopping_upload.upload_shopping_info(" . ($b + 9) . "::pg_catalog.int8);
		BEGIN;
		SELECT errcode, errmsg FROM shopping_upload.upload_shopping_info(" . ($b + 1) . "::pg_catalog.int8);
		COMMIT;");
	check($out =~ /^0\|ok\n0\|ok$/ && errors_of($err) eq '',
		"uploader: upload_shopping_info works with search_path $upath ($oname)",
		"answers: $out " . errors_of($err));

	# watcher: the views and the audit
	my $vpath = $pathf->('watcher');
	($rc, $out, $err) = as_role('watcher', "SET search_path = $vpath;
		SELECT pg_catalog.count(*) FROM shopping_upload.order_status;
		SELECT * FROM shopping_upload.stats;
		SELECT pg_catalog.count(*) FROM shopping_upload.audit;
		SELECT state FROM shopping_upload.order_status WHERE order_id OPERATOR(pg_catalog.=) " . ($b + 1) . ";
		BEGIN ISOLATION LEVEL REPEATABLE READ;
		SELECT * FROM shopping_upload.stats;
		COMMIT;");
	check(errors_of($err) eq '', "watcher: reads the views and the audit with search_path $vpath ($oname)",
		errors_of($err));

	# the worker re-plans: fresh statistics, a reload
	sql('ANALYZE shopping_upload.orders, shopping_upload.sub_orders, shopping_upload.items,
		shopping_upload.order_state, shopping_upload.audit, shopping_upload.accounts');
	sql('SELECT pg_reload_conf()');
}
check(settle(8), 'the worker uploaded every order written under the hostile search_paths',
	sql("SELECT string_agg(order_id || ':' || state, ' ') FROM shopping_upload.order_state
		WHERE state IN ('pending', 'uploading')"));
is(sql("SELECT count(*) FROM shopping_upload.order_state WHERE state NOT IN ('uploaded')
		AND order_id BETWEEN 100000 AND 199999"), '0',
	'and each was accepted');

# the administrator, with an attacker's schema first (or planted $user/public)
my $admin_order = sql(import_call('ADMIN00001'));
settle(6);
my @admin_paths = (
	'"evil_writer", pg_catalog, public',
	'public, pg_catalog',
	'"$user", public',
	'"evil_watcher", pg_catalog, public',
	'pg_catalog, "evil_uploader", public');
my $admin_n = 0;
for my $p (@admin_paths)
{
	$admin_n++;
	my $no = sprintf 'ADMINIMP%03d', $admin_n;
	my $pj = SuStub::order_json(out_trade_no => 'VALIDATE01');
	my $sj = ship_json('ADMIN00001', "-$admin_n");
	my @calls = (
		"SELECT shopping_upload.build_payload(${admin_order}::pg_catalog.int8) IS NOT NULL",
		"SELECT pg_catalog.count(*) FROM shopping_upload.validate_order(${admin_order}::pg_catalog.int8)",
		"SELECT pg_catalog.count(*) FROM shopping_upload.validate_payload('$pj'::pg_catalog.jsonb)",
		import_call($no),
		import_call($no),
		"SELECT errcode FROM shopping_upload.upload_shopping_info(${admin_order}::pg_catalog.int8)",
		# shipping information: import_shipping(), build_shipping_payload() and
		# validate_shipping_payload() run as their caller, with its search_path;
		# stored without queueing (the call by hand sends it, committed)
		'SET shopping_upload.auto_upload = off',
		"SELECT shopping_upload.import_shipping('$sj'::pg_catalog.jsonb) IS NOT NULL",
		'RESET shopping_upload.auto_upload',
		"SELECT errcode FROM shopping_upload.upload_shipping_info(${admin_order}::pg_catalog.int8)",
		"SELECT shopping_upload.build_shipping_payload(${admin_order}::pg_catalog.int8) IS NOT NULL",
		"SELECT pg_catalog.count(*) FROM shopping_upload.validate_shipping_payload('$sj'::pg_catalog.jsonb)",
		"SELECT errcode FROM shopping_upload.verify_shopping_info(${admin_order}::pg_catalog.int8)",
		# queued at commit for the worker; TRUNCATE requeues every one
		"UPDATE shopping_upload.shipments SET express_company = 'SF' WHERE order_id OPERATOR(pg_catalog.=) $admin_order",
		'TRUNCATE shopping_upload.shipment_items',
		"SELECT pg_catalog.count(*) FROM shopping_upload.token_cache()",
		"SELECT pg_catalog.count(*) FROM shopping_upload.order_status",
		"SELECT * FROM shopping_upload.stats",
		"SELECT shopping_upload.enqueue(${admin_order}::pg_catalog.int8)",
		"SELECT shopping_upload.requeue(${admin_order}::pg_catalog.int8)",
		"SELECT shopping_upload.requeue()",
		"SELECT shopping_upload.requeue(NULL::pg_catalog.int8, '{dead,rejected,held}'::pg_catalog.text[])",
		"SELECT pg_catalog.count(*) FROM shopping_upload.claim(2)",
		"UPDATE shopping_upload.items SET quantity = 4 WHERE order_id OPERATOR(pg_catalog.=) $admin_order",
		"DELETE FROM shopping_upload.orders WHERE out_trade_no OPERATOR(pg_catalog.=) '$no'::pg_catalog.text");
	my ($rc, $out, $err) = $node->psql('postgres',
		"SET search_path = $p;\n" . join(";\n", @calls) . ";\n", on_error_stop => 0);
	check(errors_of($err) eq '',
		"administrator: build_payload, validate_*, import_order, upload_shopping_info, *_shipping*, verify_shopping_info, enqueue, requeue, claim work with search_path $p",
		errors_of($err));
	settle(8);
	settle_ship(8);
}

# ---------------------------------------------------------------------
# 1b. Shipping information and verify.  The writer, granted the shipping
# tables and import_shipping() too, writes shipping rows every way under
# every search_path ordering (and with its search_path as a role setting):
# its commits queue shipping_state as the tables' owner.  The uploader,
# granted verify_shopping_info() and upload_shipping_info(), calls them,
# committed and rolled back.  The worker sends the shipping information
# once each order is accepted, and verifies every accepted upload
# (verify_delay 1 s).
# ---------------------------------------------------------------------
sub tracking_of { return map { $_->{tracking_no} // '' } @{ $_[0]->{shipping_list} // [] }; }
my (@ship_sent, @ship_forgotten, @ship_verified);    # orders, as they must end
{
	my $sround = 0;
	for my $o (@orderings, [ 'role setting', undef ])
	{
		my ($oname, $pathf) = @$o;
		$sround++;
		my $b = 400000 + 1000 * $sround;
		my ($wset, $uset, $wpath, $upath, %opt) = ('', '');
		if ($pathf)
		{
			$wpath = $pathf->('writer');
			$upath = $pathf->('uploader');
			$wset = "SET search_path = $wpath;\n";
			$uset = "SET search_path = $upath;\n";
		}
		else
		{
			# each attacker stores its search_path as its own role setting;
			# its sessions then start with it (no connection option here)
			$wpath = '"evil_writer", public, pg_catalog';
			$upath = '"evil_uploader", public, pg_catalog';
			%opt = (pgoptions => '');
			for my $r ([ writer => $wpath ], [ uploader => $upath ])
			{
				my ($rc, $out, $err) = as_role($r->[0], "ALTER ROLE CURRENT_USER SET search_path = $r->[1]");
				my ($rc2, $out2) = as_role($r->[0], 'SHOW search_path', %opt);
				diag "$r->[0] stores search_path $r->[1] as its role setting: "
				  . (failed($err) ? errors_of($err) : "its sessions start with $out2");
			}
		}
		my @ids = map { $b + $_ } 1 .. 6;
		my $w = $wset . join(";\n",
			(map { order_insert_sql($_) } @ids),
			# autocommit, before its order is accepted: it waits for it
			shipping_insert_sql($b + 1),
			"UPDATE shopping_upload.shipment_items SET merchant_item_id = 'i-0'
				WHERE order_id OPERATOR(pg_catalog.=) " . ($b + 1) . " AND shipment_no OPERATOR(pg_catalog.=) 0",
			'BEGIN', shipping_insert_sql($b + 2),
			"UPDATE shopping_upload.shipments SET tracking_no = 'SF" . ($b + 2) . "-u'
				WHERE order_id OPERATOR(pg_catalog.=) " . ($b + 2) . " AND shipment_no OPERATOR(pg_catalog.=) 0",
			'COMMIT',
			shipping_insert_sql($b + 3),
			"DELETE FROM shopping_upload.shippings WHERE order_id OPERATOR(pg_catalog.=) " . ($b + 3),
			'BEGIN', shipping_insert_sql($b + 4), 'SAVEPOINT s',
			"DELETE FROM shopping_upload.shipment_items WHERE order_id OPERATOR(pg_catalog.=) " . ($b + 4),
			'ROLLBACK TO s',
			"UPDATE shopping_upload.shippings SET updated_at = pg_catalog.now() WHERE order_id OPERATOR(pg_catalog.=) " . ($b + 4),
			'COMMIT',
			'BEGIN', shipping_insert_sql($b + 5), 'ROLLBACK',
			import_call("SHP${b}A"),
			ship_import_call("SHP${b}A", '-1'),
			ship_import_call("SHP${b}A", '-2'),    # replaces it
			'BEGIN', import_call("SHP${b}B"), ship_import_call("SHP${b}B"), 'COMMIT',
			# not queued: the uploader sends it by hand
			'SET shopping_upload.auto_upload = off', shipping_insert_sql($b + 6),
			'RESET shopping_upload.auto_upload') . ";\n";
		my ($rc, $out, $err) = as_role('writer', $w, %opt);
		my $imp = sql("SELECT coalesce(string_agg(order_id::text, ' ' ORDER BY out_trade_no), '')
			FROM shopping_upload.orders WHERE out_trade_no IN ('SHP${b}A', 'SHP${b}B')");
		my @imp = split / /, $imp;
		my $with = sql('SELECT count(*) FROM shopping_upload.shippings WHERE order_id IN ('
			  . join(',', @ids, @imp ? @imp : 0) . ')');
		check(@imp == 2 && $with eq '6' && errors_of($err) eq '',
			"writer: shipping rows and import_shipping work with search_path $wpath ($oname)",
			"imported orders: [@imp]; orders with shipping information: $with; " . errors_of($err));
		push @ship_sent, $b + 1, $b + 2, $b + 4, $b + 6, @imp;
		push @ship_forgotten, $b + 3, $b + 5;
		push @ship_verified, @ids, @imp;

		# the uploader, once the orders are accepted
		settle(8);
		my $u = $uset . join(";\n",
			"SELECT errcode, errmsg FROM shopping_upload.verify_shopping_info(" . ($b + 1) . "::pg_catalog.int8)",
			'BEGIN',
			"SELECT errcode, errmsg FROM shopping_upload.upload_shipping_info(" . ($b + 6) . "::pg_catalog.int8)",
			"SELECT errcode, errmsg FROM shopping_upload.verify_shopping_info(" . ($b + 6) . "::pg_catalog.int8)",
			'COMMIT',
			'BEGIN',
			"SELECT errcode, errmsg FROM shopping_upload.verify_shopping_info(" . ($b + 2) . "::pg_catalog.int8)",
			"SELECT errcode, errmsg FROM shopping_upload.upload_shipping_info(" . ($b + 6) . "::pg_catalog.int8)",
			'ROLLBACK') . ";\n";
		($rc, $out, $err) = as_role('uploader', $u, %opt);
		my @answers = grep { /\|/ } split /\n/, $out;
		check(@answers == 5 && !grep({ $_ ne '0|ok' } @answers) && errors_of($err) eq '',
			"uploader: verify_shopping_info and upload_shipping_info work with search_path $upath ($oname), committed and rolled back",
			"answers: [@answers] " . errors_of($err));

		# the watcher: the new columns of the views
		my $vpath = $pathf ? $pathf->('watcher') : '"evil_watcher", public, pg_catalog';
		($rc, $out, $err) = as_role('watcher', "SET search_path = $vpath;
			SELECT pg_catalog.count(*) FROM shopping_upload.order_status WHERE shipping_state IS NOT NULL;
			SELECT shippings_uploaded, shippings_pending, verified, awaiting_verification FROM shopping_upload.stats;");
		check(errors_of($err) eq '', "watcher: reads the shipping and verify columns with the search_path of $oname",
			errors_of($err));

		sql('ANALYZE shopping_upload.shippings, shopping_upload.shipments, shopping_upload.shipment_items,
			shopping_upload.shipping_state, shopping_upload.order_state');
		sql('SELECT pg_reload_conf()');
	}
	sql('ALTER ROLE writer RESET ALL');
	sql('ALTER ROLE uploader RESET ALL');

	# the worker sends every queued shipping information, and verifies
	my $sent_list = join(',', @ship_sent);
	my $done = wait_for("SELECT count(*) FROM shopping_upload.shipping_state
		WHERE order_id IN ($sent_list) AND state = 'uploaded'", scalar(@ship_sent), 20);
	check($done, 'the shipping information written under the hostile search_paths is uploaded ('
		  . scalar(@ship_sent) . ' orders)',
		sql("SELECT coalesce(string_agg(o.order_id || ':' || coalesce(h.state, 'none') || ' '
				|| coalesce(h.last_errcode::text, '') || ' ' || coalesce(h.last_errmsg, ''), '; '), '')
			FROM pg_catalog.unnest('{$sent_list}'::pg_catalog.int8[]) AS o(order_id)
			LEFT JOIN shopping_upload.shipping_state h USING (order_id)
			WHERE h.state IS DISTINCT FROM 'uploaded'"));
	is(sql('SELECT count(*) FROM shopping_upload.shipping_state WHERE order_id IN ('
			  . join(',', @ship_forgotten) . ')'), '0',
		'deleted and rolled back shipping information leaves no state');
	my $verified_list = join(',', @ship_verified);
	my $verified = wait_for("SELECT count(*) FROM shopping_upload.order_state
		WHERE order_id IN ($verified_list) AND verified_at IS NOT NULL AND verify_due_at IS NULL",
		scalar(@ship_verified), 20);
	check($verified, 'the worker verified every accepted upload of these orders ('
		  . scalar(@ship_verified) . ')',
		sql("SELECT coalesce(string_agg(order_id || ':' || coalesce(verify_result, '-') || ' due '
				|| coalesce(verify_due_at::text, '-') || ' ' || coalesce(verify_errcode::text, ''), '; '), '')
			FROM shopping_upload.order_state WHERE order_id IN ($verified_list)
			AND (verified_at IS NULL OR verify_due_at IS NOT NULL)"));

	# every shipping body sent is one order's own: its order_key and its
	# tracking numbers (which hold the order's id or out_trade_no), with a
	# token of the configured appid
	harvest_tokens();
	my @mixed;
	for my $r (@{ $stub->requests('/user-order/orders/shippings') })
	{
		my $body = eval { $json->decode($r->{body}) } or next;
		my $k = $body->{order_key} // {};
		my $key = defined $k->{transaction_id} ? ($k->{transaction_id} =~ s/^42000//r) : ($k->{out_trade_no} // '?');
		my @t = tracking_of($body);
		my $app = token_appids_of_request($r);
		push @mixed, "key $key with tracking [@t] and a token of $app"
		  if !@t || grep({ index($_, $key) < 0 } @t) || $app ne 'wxtestappid';
	}
	check(!@mixed, 'every shipping body sent holds its own order\'s key and shipments, with the configured appid\'s token',
		scalar(@mixed) . ' mixed: ' . join('; ', @mixed[0 .. ($#mixed < 4 ? $#mixed : 4)]));
}

# ---------------------------------------------------------------------
# Who may call what: verify_shopping_info() and upload_shipping_info()
# refuse roles without EXECUTE; the states are the extension's
# ---------------------------------------------------------------------
{
	my $id = $ship_sent[0];
	my $seq = stub_seq();
	my @calls = (
		"SELECT * FROM shopping_upload.verify_shopping_info(${id}::pg_catalog.int8)",
		"SELECT * FROM shopping_upload.upload_shipping_info(${id}::pg_catalog.int8)");
	my %extra = (
		writer => [
			"SELECT shopping_upload.build_shipping_payload(${id}::pg_catalog.int8)",
			"SELECT * FROM shopping_upload.validate_shipping_payload('" . ship_json('NOSUCH0001') . "'::pg_catalog.jsonb)",
			"INSERT INTO shopping_upload.shipping_state (order_id) VALUES (499999)",
			"UPDATE shopping_upload.shipping_state SET state = 'pending', next_attempt_at = pg_catalog.now()",
			"DELETE FROM shopping_upload.shipping_state",
			"UPDATE shopping_upload.order_state SET verify_due_at = pg_catalog.now()",
			"INSERT INTO shopping_upload.audit (order_id, attempt, via, sent, errcode, kind) VALUES (1, 1, 'sql', false, 0, 'shipping')",
			'TRUNCATE shopping_upload.shipments',
			'TRUNCATE shopping_upload.shipment_items',
			'TRUNCATE shopping_upload.shippings CASCADE',
			"SELECT shopping_upload.requeue()",
			"SELECT * FROM shopping_upload.claim(1)",
			"SELECT shopping_upload.enqueue(${id}::pg_catalog.int8)",
			"ALTER ROLE CURRENT_USER SET shopping_upload.verify_delay = 0",
			"SET shopping_upload.verify_delay = 0",
		],
		orders_writer => [
			"INSERT INTO shopping_upload.shippings (order_id, delivery_mode) VALUES ($id, 1)",
			"UPDATE shopping_upload.shipments SET tracking_no = 'X'",
			"DELETE FROM shopping_upload.shipment_items",
			ship_import_call('NOSUCH0001'),
			"INSERT INTO shopping_upload.shipping_state (order_id) VALUES ($id)",
		],
		watcher => [ "SELECT * FROM shopping_upload.shipping_state" ],
	);
	my @allowed;
	for my $role (qw(writer watcher dbowner orders_writer))
	{
		for my $q (@calls, @{ $extra{$role} // [] })
		{
			my ($rc, $out, $err) = as_role($role, "$q;");
			push @allowed, "$role: $q" unless $err =~ /permission denied|must be (superuser|owner)|cannot be changed/;
		}
	}
	my @req = grep { $_->{path} =~ m{/(verify|shippings)$} && index($_->{body}, "42000$id") >= 0 } @{ stub_since($seq) };
	check(!@allowed && !@req,
		'roles without EXECUTE are refused verify_shopping_info() and upload_shipping_info(); no role writes the states, the audit or the shipping tables without its grants',
		'not refused: ' . join('; ', @allowed) . '; verify/shippings requests made: ' . scalar(@req));
	is(sql('SELECT count(*) FROM shopping_upload.shipping_state WHERE order_id = 499999'), '0',
		'and no shipping_state row appeared for them');
}

# ---------------------------------------------------------------------
# The uploader's settings for the calls it may make: SET, set_config(),
# role settings, connection options (appid, api_base_url, verify_delay)
# ---------------------------------------------------------------------
{
	my $id = $ship_sent[0];
	my @tries = (
		"SET shopping_upload.appid = 'wxROLE'",
		"SET shopping_upload.api_base_url = 'http://127.0.0.1:9'",
		"SET shopping_upload.verify_delay = 0",
		"SELECT pg_catalog.set_config('shopping_upload.api_base_url', 'http://127.0.0.1:9', false)",
		"SELECT pg_catalog.set_config('shopping_upload.verify_delay', '0', false)",
		"ALTER ROLE CURRENT_USER SET shopping_upload.appid = 'wxROLE'",
		"ALTER ROLE CURRENT_USER SET shopping_upload.api_base_url = 'http://127.0.0.1:9'",
		"ALTER ROLE CURRENT_USER SET shopping_upload.verify_delay = 0",
		"ALTER ROLE CURRENT_USER IN DATABASE postgres SET shopping_upload.api_base_url = 'http://127.0.0.1:9'");
	my @accepted;
	for my $t (@tries)
	{
		my ($rc, $out, $err) = as_role('uploader', "$t;");
		push @accepted, $t unless $err =~ /permission denied|must be superuser|cannot be changed|not allowed/;
	}
	my $opts = "$ENV{PGOPTIONS} -c shopping_upload.appid=wxROLE -c shopping_upload.api_base_url=http://127.0.0.1:9"
	  . ' -c shopping_upload.verify_delay=0';
	my $seq = stub_seq();
	my ($rc, $out, $err) = as_role('uploader',
		"SELECT errcode, errmsg FROM shopping_upload.verify_shopping_info(${id}::pg_catalog.int8);
		SELECT errcode, errmsg FROM shopping_upload.upload_shipping_info(${id}::pg_catalog.int8);",
		pgoptions => $opts);
	push @accepted, 'connection options' unless $err =~ /FATAL|permission denied|must be superuser|cannot be changed/;
	my ($rc2, $out2, $err2) = as_role('uploader',
		"SELECT errcode, errmsg FROM shopping_upload.verify_shopping_info(${id}::pg_catalog.int8);
		SELECT errcode, errmsg FROM shopping_upload.upload_shipping_info(${id}::pg_catalog.int8);
		SHOW shopping_upload.verify_delay;");
	harvest_tokens();
	my @req = grep { $_->{path} =~ m{/(verify|shippings)$} && index($_->{body}, "42000$id") >= 0 } @{ stub_since($seq) };
	my @apps = map { token_appids_of_request($_) } @req;
	my @role_tok = grep { ($json->decode($_->{body})->{appid} // '') eq 'wxROLE' } @{ stub_since($seq, '/cgi-bin/stable_token') };
	check(!@accepted, "uploader's session and role settings cannot set appid, api_base_url, verify_delay",
		'accepted: ' . join('; ', @accepted));
	check($out2 =~ /^0\|ok\n0\|ok\n1s$/ && @req >= 2 && !grep({ $_ ne 'wxtestappid' } @apps) && !@role_tok,
		'verify_shopping_info() and upload_shipping_info() reach the configured API with the configured appid\'s token',
		"answers: $out2 " . errors_of($err2) . "; requests: " . scalar(@req) . " with tokens of [@apps]; stable_token for wxROLE: " . scalar(@role_tok));
	sql('ALTER ROLE uploader RESET ALL');
}

# ---------------------------------------------------------------------
# An order deleted and written again under the same id in one
# transaction (auto_upload off around it) is a new order: its state must
# not say it was uploaded.  It is queued as a new version all the same, and
# its shipping information goes only after the NEW order's upload is
# accepted (the state once kept the deleted order's uploaded_version, and
# the shipping information went out first)
# ---------------------------------------------------------------------
{
	my $id = 490001;
	as_role('writer', join(";\n", order_insert_sql($id)) . ";\n");
	wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'uploaded', 8);
	my $seq = stub_seq();
	my ($rc, $out, $err) = as_role('writer', join(";\n", 'BEGIN',
		'SET LOCAL shopping_upload.auto_upload = off',
		"DELETE FROM shopping_upload.orders WHERE order_id OPERATOR(pg_catalog.=) $id",
		order_insert_sql($id, '43000'),
		'SET LOCAL shopping_upload.auto_upload = on',
		shipping_insert_sql($id), 'COMMIT') . ";\n");
	wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'uploaded', 8);
	usleep(1_000_000);
	settle_ship(8);
	my $st = sql("SELECT coalesce((SELECT state || ' version ' || version || ', uploaded_version '
		|| coalesce(uploaded_version::text, 'NULL') FROM shopping_upload.order_state WHERE order_id = $id), 'no state')");
	my $sst = sql("SELECT coalesce((SELECT state || ' ' || coalesce(last_errcode::text, '') || ' ' || coalesce(last_errmsg, '')
		FROM shopping_upload.shipping_state WHERE order_id = $id), 'no state')");
	my @uploads = grep { index($_->{body}, "43000$id") >= 0 && ($_->{errcode} // -9) == 0 }
	  @{ stub_since($seq, '/user-order/orders') };
	my @ships = grep { index($_->{body}, "43000$id") >= 0 } @{ stub_since($seq, '/user-order/orders/shippings') };
	my $first_upload = @uploads ? $uploads[0]{seq} : undef;
	my @early = grep { !defined $first_upload || $_->{seq} < $first_upload } @ships;
	check(@uploads && @ships && !@early && $sst =~ /^uploaded 0 /,
		'an order written again under an accepted order\'s id is a new order: uploaded anew, and its shipping information sent only after that upload',
		"the new order (transaction_id 43000$id): order state $st, " . scalar(@uploads) . " accepted uploads of it; "
		  . scalar(@ships) . " shipping requests, " . scalar(@early) . " before its first accepted upload; shipping state: $sst");
	# leave nothing due for what follows
	sql("DELETE FROM shopping_upload.orders WHERE order_id = $id");
	settle(8);
	settle_ship(8);
}

# ---------------------------------------------------------------------
# Not hostile, found on the way: shipping rows written in a transaction,
# then upload_shipping_info() in a savepoint that is rolled back (its
# request failed, the caller undoes it): the rows must still be queued at
# commit, as if the call had not been made
# ---------------------------------------------------------------------
{
	my $id = 490002;
	as_role('writer', join(";\n", order_insert_sql($id)) . ";\n");
	wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'uploaded', 8);
	$stub->fault(kind => 'http500', path => '/user-order/orders/shippings');
	my ($rc, $out, $err) = $node->psql('postgres', join(";\n", 'BEGIN', shipping_insert_sql($id),
		'SAVEPOINT s',
		"SELECT errcode, errmsg FROM shopping_upload.upload_shipping_info($id)",
		'ROLLBACK TO s', 'COMMIT') . ";\n", on_error_stop => 0);
	$stub->clear_faults;
	my $shipped = wait_for("SELECT coalesce((SELECT state FROM shopping_upload.shipping_state WHERE order_id = $id), 'none')",
		'uploaded', 8);
	my $st = sql("SELECT coalesce((SELECT state || ' ' || coalesce(last_errcode::text, '') FROM shopping_upload.shipping_state
		WHERE order_id = $id), 'no shipping_state row')");
	check($shipped,
		'shipping rows written before an upload_shipping_info() rolled back to a savepoint are still queued, and sent by the worker',
		"the call in the savepoint answered: " . ($out || errors_of($err)) . "; its shipping information now: $st");
	sql("DELETE FROM shopping_upload.orders WHERE order_id = $id");
	settle(8);
	settle_ship(8);
}

# ---------------------------------------------------------------------
# 1c. WeChat's order shipping management service: trade_managed on,
# reconcile_interval 2 s, each payment registered at the stand-in before
# its shipment is written.  Per ordering the writer writes a unified
# delivery that it changes once the shipping is complete and accepted
# (needs_reship, until the uploader's reship()), a split delivery in two
# steps, a unified one whose parcel it marks signed for later (the worker's
# receipt reminder), one with auto_upload off (the uploader sends it by
# hand, asks get_order and reminds of the receipt) and one rolled back; the
# receiver passes push events to receive_event(), committed and rolled
# back; the watcher reads trade_state, events and the views' new columns.
# The worker sends the uploads, the re-ships, get_order and the receipt
# reminders meanwhile, and re-plans.
# ---------------------------------------------------------------------
my $TRADE_UPLOAD = '/wxa/sec/order/upload_shipping_info';
my $TRADE_GET = '/wxa/sec/order/get_order';
my $TRADE_NOTIFY = '/wxa/sec/order/notify_confirm_receive';
# the calls about an appid (the administrator's alone)
my @TRADE_APP_PATHS = ('/wxa/sec/order/is_trade_managed', '/wxa/sec/order/set_msg_jump_path',
	'/wxa/sec/order/opspecialorder', '/cgi-bin/express/delivery/open_msg/get_delivery_list');

# the payments of orders of order_insert_sql (transaction_id 42000<id>,
# payer o-<id>), registered at the stand-in
sub trade_register
{
	my @ids = @_;
	$stub->_control('POST', '/__stub/trade/payments',
		{ payments => [ map { { transaction_id => "42000$_", openid => "o-$_" } } @ids ] });
}

# the stand-in's payments, by order id
sub trade_payments
{
	return { map { (($_->{transaction_id} // '') =~ s/^42000//r) => $_ }
		  @{ $stub->_control('GET', '/__stub/trade/payments') } };
}

# a push event of an order's payment, as WeChat posts it (JSON text)
sub trade_event
{
	my ($id, $event, %o) = @_;
	return $json->encode($stub->_control('POST', '/__stub/trade/event',
		{ transaction_id => "42000$id", event => $event, %o }));
}

# shipping rows for the service, for an order of order_insert_sql: by
# express (YTO and ZTO need no contact), each parcel's item_desc derived
# from its items; unified (one parcel), or split in two steps (parcel a with
# i-0, not all delivered; then parcel b with i-1, all delivered)
sub trade_unified_sql
{
	my ($id) = @_;
	return (
		"INSERT INTO shopping_upload.shippings (order_id, delivery_mode, logistics_type) VALUES ($id, 1, 1)",
		"INSERT INTO shopping_upload.shipments (order_id, shipment_no, tracking_no, express_company)
			VALUES ($id, 0, 'YT$id-a', 'YTO')");
}

sub trade_split_sql
{
	my ($id, $step) = @_;
	return (
		"INSERT INTO shopping_upload.shippings (order_id, delivery_mode, logistics_type, is_all_delivered)
			VALUES ($id, 2, 1, false)",
		"INSERT INTO shopping_upload.shipments (order_id, shipment_no, tracking_no, express_company)
			VALUES ($id, 0, 'YT$id-a', 'YTO')",
		"INSERT INTO shopping_upload.shipment_items (order_id, shipment_no, item_no, merchant_item_id)
			VALUES ($id, 0, 0, 'i-0')") if $step == 1;
	return (
		"INSERT INTO shopping_upload.shipments (order_id, shipment_no, tracking_no, express_company)
			VALUES ($id, 1, 'ZT$id-b', 'ZTO')",
		"INSERT INTO shopping_upload.shipment_items (order_id, shipment_no, item_no, merchant_item_id)
			VALUES ($id, 1, 0, 'i-1')",
		"UPDATE shopping_upload.shippings SET is_all_delivered = true WHERE order_id OPERATOR(pg_catalog.=) $id");
}

# an order of order_insert_sql with a unified shipment for the service,
# written with auto_upload off (not queued: a call by hand sends it), and
# its payment registered
sub trade_unqueued_order
{
	my ($id) = @_;
	trade_register($id);
	sql(join(";\n", order_insert_sql($id), 'SET shopping_upload.auto_upload = off',
		'BEGIN', trade_unified_sql($id), 'COMMIT') . ";\n");
}

# no shipment waiting for the service (or leased by a claim)
sub settle_trade
{
	my ($secs) = @_;
	return wait_for("SELECT count(*) FROM shopping_upload.trade_state
		WHERE state IN ('pending', 'uploading', 'retrying', 'waiting_for_payment')", '0', $secs // 8);
}

# where the service's shipments of these orders stand (for the details)
sub trade_rows
{
	my (@ids) = @_;
	return sql("SELECT coalesce(string_agg(order_id || ':' || state || ' finish ' || finish_count
			|| ' reship ' || reship_used || ' allowed ' || reship_allowed || ' ' || coalesce(last_errcode::text, '-') || ' '
			|| coalesce(last_errmsg, '') || ' checked ' || (checked_at IS NOT NULL)
			|| ' reminded ' || (confirm_notified_at IS NOT NULL), '; ' ORDER BY order_id), 'none')
		FROM shopping_upload.trade_state WHERE order_id IN (" . join(',', @ids, 0) . ")");
}

my (@trade_reshipped, @trade_split, @trade_received, @trade_by_hand, @trade_forgotten, @trade_admin);
{
	my $seq0 = stub_seq();
	my $since = sql('SELECT pg_catalog.clock_timestamp()');
	my @write_errors;
	my $tround = 0;
	for my $o (@orderings)
	{
		my ($oname, $pathf) = @$o;
		$tround++;
		my $b = 600000 + 1000 * $tround;
		my ($reship, $split, $received, $by_hand, $forgotten) = map { $b + $_ } 1 .. 5;
		trade_register($reship, $split, $received, $by_hand, $forgotten);

		# the writer: its orders, then a shipment each, in a transaction each
		my $wpath = $pathf->('writer');
		my ($rc, $out, $err) = as_role('writer', "SET search_path = $wpath;\n" . join(";\n",
			(map { order_insert_sql($_) } $reship, $split, $received, $by_hand, $forgotten),
			'BEGIN', trade_unified_sql($reship), 'COMMIT',
			'BEGIN', trade_split_sql($split, 1), 'COMMIT',
			'BEGIN', trade_unified_sql($received), 'COMMIT',
			'SET shopping_upload.auto_upload = off', trade_unified_sql($by_hand),
			'RESET shopping_upload.auto_upload',
			'BEGIN', trade_unified_sql($forgotten), 'ROLLBACK') . ";\n");
		my $queued = sql("SELECT coalesce(string_agg(order_id::text, ' ' ORDER BY order_id), '')
			FROM shopping_upload.trade_state WHERE order_id BETWEEN $b AND $b + 999");
		check($queued eq "$reship $split $received" && errors_of($err) eq '',
			"writer: shipments for the shipping management service work with search_path $wpath ($oname), queued at commit",
			"queued: [$queued], want [$reship $split $received] (not the one written with auto_upload off, "
			  . 'nor the one rolled back); ' . errors_of($err));

		# once the worker has them accepted: the split's last parcel, a change
		# after completion, the parcel signed for
		wait_for("SELECT count(*) FROM shopping_upload.trade_state WHERE order_id IN ($reship, $split, $received)
			AND state = 'uploaded' AND uploaded_version = version", '3', 15);
		($rc, $out, $err) = as_role('writer', "SET search_path = $wpath;\n" . join(";\n",
			'BEGIN', trade_split_sql($split, 2), 'COMMIT',
			"UPDATE shopping_upload.shipments SET tracking_no = 'YT$reship-c'
				WHERE order_id OPERATOR(pg_catalog.=) $reship",
			"UPDATE shopping_upload.shippings SET received_at = pg_catalog.clock_timestamp()
				WHERE order_id OPERATOR(pg_catalog.=) $received") . ";\n");
		push @write_errors, "$oname: " . errors_of($err) if failed($err);

		# the receiver: push events, committed and rolled back
		my @ev = (trade_event($reship, 'trade_manage_remind_shipping', msg => 'ship it within 48 hours'),
			trade_event($received, 'trade_manage_order_settlement', stage => 'shipping'),
			trade_event($split, 'trade_manage_remind_access_api', msg => 'use the API'));
		my $rpath = $pathf->('receiver');
		($rc, $out, $err) = as_role('receiver', "SET search_path = $rpath;\n"
			  . join('', map { 'SELECT shopping_upload.receive_event(' . qt($_) . "::pg_catalog.jsonb) IS NOT NULL;\n" } @ev)
			  . "BEGIN;\nSELECT shopping_upload.receive_event(" . qt($ev[0]) . "::pg_catalog.jsonb) IS NOT NULL;\nROLLBACK;\n");
		my @got = grep { /^[tf]$/ } split /\n/, $out;
		check("@got" eq 't t t t' && errors_of($err) eq '',
			"receiver: receive_event() works with search_path $rpath ($oname), committed and rolled back",
			"answers: [@got] " . errors_of($err));

		# the uploader: the one not queued by hand; the re-ship of the change
		wait_for("SELECT state FROM shopping_upload.trade_state WHERE order_id = $reship", 'needs_reship', 10);
		my $upath = $pathf->('uploader');
		($rc, $out, $err) = as_role('uploader', "SET search_path = $upath;\n" . join(";\n",
			"SELECT errcode, errmsg FROM shopping_upload.upload_trade_shipping(${by_hand}::pg_catalog.int8)",
			"SELECT shopping_upload.get_trade_order(${by_hand}::pg_catalog.int8) IS NOT NULL",
			"SELECT errcode, errmsg FROM shopping_upload.notify_confirm_receive(${by_hand}::pg_catalog.int8,
				pg_catalog.clock_timestamp())",
			'BEGIN',
			"SELECT shopping_upload.get_trade_order(${received}::pg_catalog.int8) IS NOT NULL",
			'ROLLBACK',
			"SELECT shopping_upload.reship(${reship}::pg_catalog.int8)") . ";\n");
		my @answers = grep { /\S/ } split /\n/, $out;
		check("@answers" eq '0|ok t 0|ok t' && errors_of($err) eq '',
			"uploader: upload_trade_shipping, get_trade_order, notify_confirm_receive and reship work with search_path $upath ($oname), committed and rolled back",
			"answers: [@answers] " . errors_of($err) . '; ' . trade_rows($reship, $by_hand));

		# the watcher: trade_state, events, the views' new columns
		my $vpath = $pathf->('watcher');
		($rc, $out, $err) = as_role('watcher', "SET search_path = $vpath;
			SELECT trade_shipping_state, trade_shipping_errcode, wechat_order_state, in_complaint, reship_used
			  FROM shopping_upload.order_status WHERE order_id OPERATOR(pg_catalog.=) $reship;
			SELECT pg_catalog.count(*) FROM shopping_upload.trade_state;
			SELECT pg_catalog.count(*) FROM shopping_upload.events;
			SELECT trade_shipped, trade_pending, trade_waiting_for_payment, trade_needs_reship, trade_failed
			  FROM shopping_upload.stats;");
		check(errors_of($err) eq '',
			"watcher: reads trade_state, events and the service's columns of the views with search_path $vpath ($oname)",
			errors_of($err));

		push @trade_reshipped, $reship;
		push @trade_split, $split;
		push @trade_received, $received;
		push @trade_by_hand, $by_hand;
		push @trade_forgotten, $forgotten;
		sql('ANALYZE shopping_upload.trade_state, shopping_upload.trade_apps, shopping_upload.events,
			shopping_upload.shippings, shopping_upload.shipments, shopping_upload.shipment_items');
		sql('SELECT pg_reload_conf()');
	}

	# what the worker did meanwhile: the uploads, the re-ships, get_order of
	# every payment accepted, the receipt reminders; what the stand-in has
	my @accepted = (@trade_reshipped, @trade_split, @trade_received, @trade_by_hand);
	my $list = join(',', @accepted);
	my $done = wait_for("SELECT count(*) FROM shopping_upload.trade_state WHERE order_id IN ($list)
		AND state = 'uploaded' AND uploaded_version = version AND finish_count >= 1 AND checked_at IS NOT NULL
		AND (reship_used OR order_id NOT IN (" . join(',', @trade_reshipped) . "))
		AND (confirm_notified_at IS NOT NULL OR order_id NOT IN (" . join(',', @trade_received, @trade_by_hand) . '))',
		scalar(@accepted), 20);
	my $pay = trade_payments();
	my @wrong;
	my $stand_in = sub {
		my ($id, $accepted, $reship_used, $reminded) = @_;
		my $p = $pay->{$id} // {};
		my $is = sprintf('%d accepted, re-ship %s, reminder %s', $p->{uploads_accepted} // 0,
			$p->{reship_used} ? 'used' : 'not used', $p->{receipt_reminder_sent} ? 'sent' : 'not sent');
		push @wrong, "$id: $is"
		  if ($p->{uploads_accepted} // 0) != $accepted || !$p->{reship_used} != !$reship_used
		  || !$p->{receipt_reminder_sent} != !$reminded;
	};
	$stand_in->($_, 2, 1, 0) for @trade_reshipped;
	$stand_in->($_, 2, 0, 0) for @trade_split;
	$stand_in->($_, 1, 0, 1) for @trade_received, @trade_by_hand;
	$stand_in->($_, 0, 0, 0) for @trade_forgotten;
	my $forgotten = sql('SELECT count(*) FROM shopping_upload.trade_state WHERE order_id IN ('
		  . join(',', @trade_forgotten) . ')');
	my $by_worker = sql("SELECT coalesce(string_agg(kind || ' ' || n, ', ' ORDER BY kind), '') FROM
		(SELECT kind, count(*) AS n FROM shopping_upload.audit WHERE via = 'worker' AND errcode = 0
		   AND kind IN ('trade_shipping', 'trade_order', 'trade_confirm') AND order_id IN ($list) GROUP BY 1) x");
	my %req;
	$req{ $_->{path} }++ for grep { !defined $_->{fault} && ($_->{errcode} // -9) == 0 } @{ stub_since($seq0) };
	check($done && !@wrong && $forgotten eq '0' && $by_worker =~ /trade_confirm \d.*trade_order \d.*trade_shipping \d/
		  && !@write_errors,
		'the worker sent the uploads, the re-ships, get_order and the receipt reminders of the shipments written under the hostile search_paths ('
		  . scalar(@accepted) . ' payments); the stand-in has each as it must',
		"accepted by the worker: $by_worker; at the stand-in: "
		  . join(', ', map { "$_ x" . ($req{$_} // 0) } $TRADE_UPLOAD, $TRADE_GET, $TRADE_NOTIFY)
		  . '; wrong: ' . join('; ', @wrong) . '; ' . join('; ', @write_errors)
		  . ($done ? '' : '; ' . trade_rows(@accepted)));
	my $foreign = sql("SELECT coalesce(string_agg(DISTINCT fn || ' (by ' || planter || ') as ' || current_user_
		|| ' in ' || coalesce(backend, '?'), '; '), '') FROM public.pwned
		WHERE current_user_ <> planter AND at >= '$since'");
	check($foreign eq '', 'no planted object ran as another role meanwhile (public.pwned)', $foreign);
}

# the administrator: the service's SECURITY DEFINER functions, the builder
# and the validator (which run as their caller), with an attacker's schema
# first; each path on an order of its own, its payment not shipped yet
{
	my $n = 0;
	for my $p (@admin_paths)
	{
		$n++;
		my $id = 700000 + $n;
		trade_register($id);
		sql(join(";\n", order_insert_sql($id)) . ";\n");
		my $remind = trade_event($id, 'trade_manage_remind_shipping', msg => 'ship it within 48 hours');
		my @calls = (
			'SELECT shopping_upload.is_trade_managed() IS NOT NULL',
			"SELECT shopping_upload.is_trade_managed('wxacct'::pg_catalog.text) IS NOT NULL",
			'SELECT shopping_upload.refresh_delivery_companies() IS NOT NULL',
			"SELECT shopping_upload.set_msg_jump_path('pages/order/detail'::pg_catalog.text)",
			"SELECT shopping_upload.report_special_order(${id}::pg_catalog.int8, 'test'::pg_catalog.text)",
			'SELECT shopping_upload.receive_event(' . qt($remind) . '::pg_catalog.jsonb) IS NOT NULL',
			# stored without queueing: the call by hand sends it
			'SET shopping_upload.auto_upload = off',
			'BEGIN', trade_unified_sql($id), 'COMMIT',
			'RESET shopping_upload.auto_upload',
			"SELECT shopping_upload.build_trade_shipping_payload(${id}::pg_catalog.int8) IS NOT NULL",
			"SELECT pg_catalog.count(*) FROM shopping_upload.validate_trade_shipping_payload(
				shopping_upload.build_trade_shipping_payload(${id}::pg_catalog.int8))",
			"SELECT errcode, errmsg FROM shopping_upload.upload_trade_shipping(${id}::pg_catalog.int8)",
			"SELECT shopping_upload.get_trade_order(${id}::pg_catalog.int8) IS NOT NULL",
			"SELECT errcode, errmsg FROM shopping_upload.notify_confirm_receive(${id}::pg_catalog.int8,
				pg_catalog.clock_timestamp())",
			# queued at commit for the worker, which sends it as the re-ship
			"UPDATE shopping_upload.shipments SET tracking_no = 'YT$id-c' WHERE order_id OPERATOR(pg_catalog.=) $id",
			"SELECT shopping_upload.reship(${id}::pg_catalog.int8)",
			'SELECT pg_catalog.count(*) FROM shopping_upload.trade_state',
			'SELECT pg_catalog.count(*) FROM shopping_upload.events',
			'SELECT pg_catalog.count(*) FROM shopping_upload.trade_apps',
			'SELECT pg_catalog.count(*) FROM shopping_upload.order_status',
			'SELECT * FROM shopping_upload.stats');
		my ($rc, $out, $err) = $node->psql('postgres',
			"SET search_path = $p;\n" . join(";\n", @calls) . ";\n", on_error_stop => 0);
		my @answers = grep { /^-?\d+\|[a-z]/ } split /\n/, $out;
		check(errors_of($err) eq '' && "@answers" eq '0|ok 0|ok',
			"administrator: is_trade_managed, refresh_delivery_companies, set_msg_jump_path, report_special_order, receive_event, the trade builder and validator, upload_trade_shipping, get_trade_order, notify_confirm_receive, reship work with search_path $p",
			"answers: [@answers] " . errors_of($err));
		push @trade_admin, $id;
	}
	my $list = join(',', @trade_admin);
	my $sent = wait_for("SELECT count(*) FROM shopping_upload.trade_state WHERE order_id IN ($list)
		AND reship_used AND state = 'uploaded' AND uploaded_version = version", scalar(@trade_admin), 15);
	my $pay = trade_payments();
	my @special = grep { !($pay->{$_}{special} && ($pay->{$_}{special}{type} // 0) == 2) } @trade_admin;
	check($sent && !@special, 'and the worker sent the re-ships they allowed; the stand-in has each test order reported',
		trade_rows(@trade_admin) . "; not reported: [@special]");
}

# ---------------------------------------------------------------------
# Who may call what: the service's functions refuse roles without
# EXECUTE; trade_state, trade_apps, events and delivery_companies are
# read and written by no role beyond its grants (the watcher reads
# trade_state and events)
# ---------------------------------------------------------------------
{
	my $id = $trade_reshipped[0];
	my $seq = stub_seq();
	my $events0 = sql('SELECT count(*) FROM shopping_upload.events');
	my $settled = trade_event($id, 'trade_manage_order_settlement', stage => 'settlement');
	my %calls = (
		upload_trade_shipping => "SELECT * FROM shopping_upload.upload_trade_shipping(${id}::pg_catalog.int8)",
		reship => "SELECT shopping_upload.reship(${id}::pg_catalog.int8)",
		get_trade_order => "SELECT shopping_upload.get_trade_order(${id}::pg_catalog.int8)",
		notify_confirm_receive => "SELECT * FROM shopping_upload.notify_confirm_receive(${id}::pg_catalog.int8, pg_catalog.clock_timestamp())",
		receive_event => 'SELECT shopping_upload.receive_event(' . qt($settled) . '::pg_catalog.jsonb)',
		is_trade_managed => "SELECT shopping_upload.is_trade_managed('wxtestappid'::pg_catalog.text)",
		refresh_delivery_companies => 'SELECT shopping_upload.refresh_delivery_companies()',
		set_msg_jump_path => "SELECT shopping_upload.set_msg_jump_path('pages/evil'::pg_catalog.text)",
		report_special_order => "SELECT shopping_upload.report_special_order(${id}::pg_catalog.int8, 'test'::pg_catalog.text)",
		build_trade_shipping_payload => "SELECT shopping_upload.build_trade_shipping_payload(${id}::pg_catalog.int8)",
		validate_trade_shipping_payload => "SELECT * FROM shopping_upload.validate_trade_shipping_payload('{}'::pg_catalog.jsonb)",
	);
	my %granted = (uploader => [qw(upload_trade_shipping reship get_trade_order notify_confirm_receive)],
		receiver => ['receive_event']);
	my %tables = (
		trade_state => [ "INSERT INTO shopping_upload.trade_state (order_id) VALUES (699999)",
			"UPDATE shopping_upload.trade_state SET reship_allowed = true, reship_used = false, finish_count = 0, state = 'pending', next_attempt_at = pg_catalog.now()",
			'DELETE FROM shopping_upload.trade_state', 'TRUNCATE shopping_upload.trade_state' ],
		trade_apps => [ "INSERT INTO shopping_upload.trade_apps (appid, pinned) VALUES ('wxEVIL', true)",
			'UPDATE shopping_upload.trade_apps SET pinned = false', 'DELETE FROM shopping_upload.trade_apps',
			'TRUNCATE shopping_upload.trade_apps' ],
		events => [ "INSERT INTO shopping_upload.events (event, payload) VALUES ('forged', '{}')",
			"UPDATE shopping_upload.events SET applied = 'forged'", 'DELETE FROM shopping_upload.events',
			'TRUNCATE shopping_upload.events', "SELECT pg_catalog.nextval('shopping_upload.events_event_id_seq')" ],
		delivery_companies => [ "INSERT INTO shopping_upload.delivery_companies (delivery_id) VALUES ('EVIL')",
			"UPDATE shopping_upload.delivery_companies SET delivery_name = 'forged'",
			'DELETE FROM shopping_upload.delivery_companies', 'TRUNCATE shopping_upload.delivery_companies' ],
	);
	my %may_read = (watcher => { trade_state => 1, events => 1 });
	my (@allowed, $tries);
	for my $role (qw(writer uploader watcher dbowner orders_writer receiver))
	{
		my %mine = map { $_ => 1 } @{ $granted{$role} // [] };
		my @q = map { $calls{$_} } grep { !$mine{$_} } sort keys %calls;
		for my $t (sort keys %tables)
		{
			push @q, "SELECT * FROM shopping_upload.$t" unless $may_read{$role}{$t};
			push @q, @{ $tables{$t} };
		}
		# one session, a statement a line: psql's messages name the line
		my ($rc, $out, $err) = as_role($role, join('', map { "$_;\n" } @q));
		my %refused;
		$refused{$1} = 1 while $err =~ /^psql:<stdin>:(\d+): ERROR:\s+(?:permission denied|must be (?:superuser|owner))/mg;
		push @allowed, map { "$role: $q[$_ - 1]" } grep { !$refused{$_} } 1 .. @q;
		$tries += @q;
	}
	harvest_tokens();
	my @req = grep {
		my $r = $_;
		grep({ $r->{path} eq $_ } @TRADE_APP_PATHS)
		  || (grep({ $r->{path} eq $_ } $TRADE_UPLOAD, $TRADE_NOTIFY) && index($r->{body}, "42000$id") >= 0)
	} @{ stub_since($seq) };
	my $left = sql("SELECT (SELECT count(*) FROM shopping_upload.trade_state WHERE order_id = 699999)
		|| ' ' || (SELECT count(*) FROM shopping_upload.trade_apps WHERE appid = 'wxEVIL' OR NOT pinned)
		|| ' ' || (SELECT count(*) FROM shopping_upload.events WHERE event = 'forged' OR applied = 'forged')
		|| ' ' || (SELECT count(*) FROM shopping_upload.events)
		|| ' ' || (SELECT count(*) FROM shopping_upload.delivery_companies WHERE delivery_id = 'EVIL' OR delivery_name = 'forged')");
	check(!@allowed && !@req && $left eq "0 0 0 $events0 0",
		"roles without EXECUTE are refused each of the service's functions; no role reads or writes trade_state, trade_apps, events, delivery_companies beyond its grants ($tries tries)",
		'not refused: ' . join('; ', @allowed) . '; requests made: ' . join(' ', map { $_->{path} } @req)
		  . "; forged rows (trade_state, trade_apps, events, events in all (was $events0), delivery_companies): $left");
}

# ---------------------------------------------------------------------
# The service's settings: no role sets payment_wait, reconcile_interval,
# trade_managed, appid or api_base_url by SET, SET LOCAL, set_config(), role
# settings or connection options; the uploader's calls reach the
# configured API with the configured appid's token, and a writer's
# shipment is queued for the service whatever it tried
# ---------------------------------------------------------------------
{
	# src/settings.c: payment_wait, reconcile_interval and trade_managed are
	# PGC_SIGHUP (postgresql.conf only: "cannot be changed now", for every
	# session), appid and api_base_url PGC_SUSET ("permission denied" to any
	# role but a superuser)
	my $sighup = qr/parameter "[^"]+" cannot be changed now/;
	my $suset = qr/permission denied to set parameter/;
	my @settings = ([ 'shopping_upload.payment_wait', '1', $sighup ],
		[ 'shopping_upload.reconcile_interval', '1', $sighup ],
		[ 'shopping_upload.trade_managed', 'off', $sighup ],
		[ 'shopping_upload.appid', 'wxROLE', $suset ],
		[ 'shopping_upload.api_base_url', 'http://127.0.0.1:9', $suset ]);
	is(sql("SELECT string_agg(name || ' ' || context, ', ' ORDER BY name) FROM pg_settings WHERE name IN ("
		  . join(', ', map { "'$_->[0]'" } @settings) . ')'),
		'shopping_upload.api_base_url superuser, shopping_upload.appid superuser, shopping_upload.payment_wait sighup, '
		  . 'shopping_upload.reconcile_interval sighup, shopping_upload.trade_managed sighup',
		'the service\'s settings are sighup (payment_wait, reconcile_interval, trade_managed) or superuser (appid, api_base_url)');
	# one try a line: psql's messages name the line
	my (@tries, @want);
	for my $s (@settings)
	{
		my ($name, $v, $refusal) = @$s;
		for my $t ("SET $name = '$v'", "BEGIN; SET LOCAL $name = '$v'; COMMIT",
			"SELECT pg_catalog.set_config('$name', '$v', false)", "ALTER ROLE CURRENT_USER SET $name = '$v'",
			"ALTER ROLE CURRENT_USER IN DATABASE postgres SET $name = '$v'")
		{
			push @tries, $t;
			push @want, $refusal;
		}
	}
	my $script = join('', map { "$_;\n" } @tries);
	my $opts = join(' ', $ENV{PGOPTIONS}, map { "-c $_->[0]=$_->[1]" } @settings);
	my (@accepted, $n);
	for my $role (qw(uploader writer receiver))
	{
		my ($rc, $out, $err) = as_role($role, $script);
		my %refusal;
		$refusal{$1} = $2 while $err =~ /^psql:<stdin>:(\d+): ERROR:\s+(.*)$/mg;
		push @accepted, map { "$role: $tries[$_ - 1]: " . ($refusal{$_} // 'accepted') }
		  grep { ($refusal{$_} // '') !~ $want[ $_ - 1 ] } 1 .. @tries;
		for my $s (@settings)
		{
			($rc, $out, $err) = as_role($role, 'SELECT 1', pgoptions => "$ENV{PGOPTIONS} -c $s->[0]=$s->[1]");
			push @accepted, "$role: -c $s->[0]=$s->[1]: " . (errors_of($err) || 'accepted')
			  unless $err =~ /FATAL:\s+$s->[2]/;
		}
		$n += @tries + @settings;
	}
	check(!@accepted, "no role sets payment_wait, reconcile_interval, trade_managed (\"cannot be changed now\"), appid, api_base_url (\"permission denied\") ($n tries: SET, SET LOCAL, set_config, ALTER ROLE, connection options)",
		'not refused so: ' . join('; ', @accepted));
	sql("ALTER ROLE $_ RESET ALL") for qw(uploader writer receiver);

	# the calls by hand, after the uploader tried every way (and with the
	# connection options, which are refused)
	my $id = 690001;
	trade_unqueued_order($id);
	my $seq = stub_seq();
	my $calls = "SELECT errcode, errmsg FROM shopping_upload.upload_trade_shipping(${id}::pg_catalog.int8);
		SELECT shopping_upload.get_trade_order(${id}::pg_catalog.int8) IS NOT NULL;
		SELECT errcode, errmsg FROM shopping_upload.notify_confirm_receive(${id}::pg_catalog.int8, pg_catalog.clock_timestamp());\n";
	my ($rc0, $out0, $err0) = as_role('uploader', $calls, pgoptions => $opts);
	my ($rc, $out, $err) = as_role('uploader', $script . $calls
		  . join('', map { "SHOW $_->[0];\n" } @settings[0 .. 2]));
	harvest_tokens();
	my @req = grep { index($_->{body}, "42000$id") >= 0 } @{ stub_since($seq) };
	my %paths;
	$paths{ $_->{path} }++ for @req;
	my @apps = map { token_appids_of_request($_) } @req;
	my @role_tok = grep { ($json->decode($_->{body})->{appid} // '') eq 'wxROLE' } @{ stub_since($seq, '/cgi-bin/stable_token') };
	my @answers = grep { /\S/ && !/^(SET|BEGIN|COMMIT|ROLLBACK|ALTER ROLE)$/ } split /\n/, $out;
	check(failed($err0) && $out0 eq '' && "@answers" eq '0|ok t 0|ok 10min 2s on'
		  && $paths{$TRADE_UPLOAD} && $paths{$TRADE_GET} && $paths{$TRADE_NOTIFY}
		  && !grep({ $_ ne 'wxtestappid' } @apps) && !@role_tok,
		"upload_trade_shipping, get_trade_order and notify_confirm_receive reach the configured API with the configured appid's token, whatever the uploader tried",
		'with the connection options: ' . ($out0 || errors_of($err0)) . "; answers after the tries: [@answers]; requests: "
		  . join(', ', map { "$_ x$paths{$_}" } sort keys %paths) . " with tokens of [@apps]; stable_token for wxROLE: " . scalar(@role_tok));
	sql('ALTER ROLE uploader RESET ALL');

	# a writer that tried to turn the service off for its session
	my $wid = 690002;
	trade_register($wid);
	($rc, $out, $err) = as_role('writer', "SET shopping_upload.trade_managed = off;\n"
		  . "SELECT pg_catalog.set_config('shopping_upload.trade_managed', 'off', false);\n"
		  . join(";\n", 'BEGIN', order_insert_sql($wid), trade_unified_sql($wid), 'COMMIT') . ";\n");
	my $up = wait_for("SELECT coalesce((SELECT state FROM shopping_upload.trade_state WHERE order_id = $wid), 'none')",
		'uploaded', 10);
	check($up, "a writer's shipment is queued for the service and uploaded, whatever trade_managed it tried to SET",
		trade_rows($wid) . '; ' . errors_of($err));
}

# ---------------------------------------------------------------------
# Nothing left due: the worker is idle (no request, little CPU).  The
# service's payments are settled first (a push event each), which ends the
# worker's get_order of them
# ---------------------------------------------------------------------
{
	settle_trade(15);
	for my $id (split /\n/, sql('SELECT order_id FROM shopping_upload.trade_state WHERE check_due_at IS NOT NULL ORDER BY 1'))
	{
		sql('SELECT shopping_upload.receive_event('
			  . qt(trade_event($id, 'trade_manage_order_settlement', stage => 'settlement')) . '::jsonb)');
	}
	wait_for("SELECT count(*) FROM shopping_upload.trade_state WHERE check_due_at IS NOT NULL OR confirm_due_at IS NOT NULL
		OR state IN ('pending', 'uploading', 'retrying', 'waiting_for_payment')", '0', 15);
	wait_for("SELECT count(*) FROM shopping_upload.shipping_state WHERE state IN ('pending', 'uploading', 'retrying')",
		'0', 15);
	wait_for("SELECT count(*) FROM shopping_upload.order_state WHERE verify_due_at IS NOT NULL", '0', 15);
	settle(8);
	my $pid = worker_pid();
	my $ticks = sub {
		open my $fh, '<', "/proc/$pid/stat" or return undef;
		my @f = split / /, ((<$fh> // '') =~ s/^.*\) //r);
		return $f[11] + $f[12];    # utime + stime (fields 14, 15)
	};
	my $t0 = $ticks->();
	my $seq = stub_seq();
	usleep(3_000_000);
	my $t1 = $ticks->();
	my @req = @{ stub_since($seq) };
	my $due = sql("SELECT (SELECT count(*) FROM shopping_upload.shipping_state WHERE next_attempt_at <= now())
		|| ' shipping, ' || (SELECT count(*) FROM shopping_upload.order_state WHERE verify_due_at <= now()) || ' verify, '
		|| (SELECT count(*) FROM shopping_upload.trade_state WHERE next_attempt_at <= now()) || ' trade shipping, '
		|| (SELECT count(*) FROM shopping_upload.trade_state WHERE check_due_at <= now()) || ' get_order, '
		|| (SELECT count(*) FROM shopping_upload.trade_state WHERE confirm_due_at <= now()) || ' receipt reminders due'");
	check(defined $t0 && defined $t1 && $t1 - $t0 < 30 && !@req,
		'with nothing due the worker makes no request and spins not (3 s)',
		(defined $t0 && defined $t1 ? ($t1 - $t0) . ' clock ticks of CPU' : 'no /proc') . '; requests: '
		  . join(' ', map { $_->{path} } @req[0 .. ($#req < 5 ? $#req : 5)]) . " ($due)");
}

# ---------------------------------------------------------------------
# 2. Install time: the database owner creates the extension's schema
# before the superuser runs CREATE EXTENSION in its database
# ---------------------------------------------------------------------
{
	sql('CREATE DATABASE shop2 OWNER dbowner');
	sql("GRANT CREATE ON SCHEMA public TO PUBLIC; $pwn_infra", 'shop2');
	my ($rc, $out, $err) = as_role('dbowner', 'CREATE SCHEMA shopping_upload', db => 'shop2');
	diag "dbowner pre-creates schema shopping_upload in shop2: "
	  . (failed($err) ? $err : 'done');
	plant('dbowner', 'shopping_upload', undef, 'shop2') unless failed($err);
	($rc, $out, $err) = $node->psql('shop2', 'CREATE EXTENSION shopping_upload', on_error_stop => 0);
	my $owner = sql("SELECT coalesce((SELECT nspowner::regrole::text FROM pg_namespace
		WHERE nspname = 'shopping_upload'), '-')", 'shop2');
	my $created = sql("SELECT count(*) FROM pg_extension WHERE extname = 'shopping_upload'", 'shop2') eq '1';
	diag 'CREATE EXTENSION in shop2: ' . ($created ? "created, schema owned by $owner" : "refused: $err");
	my $consequence = '';
	if ($created && $owner eq 'dbowner')
	{
		# what the schema's owner can do to the extension's objects
		my ($rc2, $out2, $err2) = as_role('dbowner',
			'ALTER SCHEMA shopping_upload RENAME TO su_hijacked; ALTER SCHEMA su_hijacked RENAME TO shopping_upload;',
			db => 'shop2');
		$consequence = '; dbowner renaming it (and back): '
		  . (failed($err2) ? errors_of($err2) : 'succeeded (a look-alike schema could take its name)');
	}
	check(!$created || $owner ne 'dbowner',
		'CREATE EXTENSION refuses a schema that a non-superuser owns (else that owner may drop, rename and replace what the extension resolves)',
		($created ? "the extension lives in a schema owned by $owner" : $err) . $consequence);
	if ($created)
	{
		# use it there the usual ways
		my $id = sql(import_call('SHOP2000001'), 'shop2');
		$node->psql('shop2', "SELECT shopping_upload.build_payload($id);
			SELECT * FROM shopping_upload.validate_order($id);
			SELECT * FROM shopping_upload.upload_shopping_info($id);
			SELECT * FROM shopping_upload.stats; SELECT * FROM shopping_upload.order_status;",
			on_error_stop => 0);
	}
}

# ---------------------------------------------------------------------
# What ran, where, as whom (so far); then the planted objects stop trying
# to escalate, and escalated attackers lose it, so that the next phases
# test their own defences
# ---------------------------------------------------------------------
sub supers
{
	return sql("SELECT coalesce(string_agg(rolname, ', '), '') FROM pg_roles
		WHERE rolsuper AND rolname IN ('writer', 'uploader', 'watcher', 'dbowner', 'receiver')");
}
my $supers1 = supers();
check($supers1 eq '', 'no attacker became superuser through its planted objects',
	"superusers now: $supers1");
for my $db ('postgres', 'shop2')
{
	sql('UPDATE public.pwn_mode SET escalate = false', $db);
}
sql("ALTER ROLE $_ NOSUPERUSER") for @attackers;

# ---------------------------------------------------------------------
# 3. Secrets and tokens
# ---------------------------------------------------------------------
# tokens of every appid are in use now: wxtestappid (configured secret),
# wxacct (accounts' secret), wxhanded (handed-in token)
sql("SELECT " . join(', ', map { "shopping_upload.import_order('" . SuStub::order_json(
	out_trade_no => "SECRETS_$_", appid => $_) . "', '$_')" } qw(wxacct wxhanded)));
settle(6);

my %all_tokens;
sub harvest_tokens
{
	my $t = $stub->tokens;
	$all_tokens{ $t->{$_}{access_token} } = $_ for keys %$t;
	for my $r (@{ $stub->requests })
	{
		my $q = $r->{query}{access_token};
		$all_tokens{$q} //= '?' if defined $q && length $q > 8;
		my $a = $r->{answer} && $r->{answer}{json} && $r->{answer}{json}{access_token};
		# a token handed out earlier is its appid's, even once replaced
		my $app = $a && $r->{path} eq '/cgi-bin/stable_token' && eval { $json->decode($r->{body})->{appid} };
		$all_tokens{$a} = $app if $a && $app && ($all_tokens{$a} // '?') eq '?';
		$all_tokens{$a} //= '?' if $a;
	}
	$all_tokens{$HANDED_TOKEN} = 'wxhanded';
}
harvest_tokens();

# the strings that must never reach an attacker or the log
sub secrets
{
	return ([ 'the configured secret', $SECRET ], [ 'the accounts secret', $ACCT_SECRET ],
		[ 'the handed-in token', $HANDED_TOKEN ],
		map { [ "a token of $all_tokens{$_}", $_ ] } sort keys %all_tokens);
}

# the first secret found in $text, or undef
sub leaked
{
	my ($text) = @_;
	for my $s (secrets())
	{
		return $s->[0] if index($text, $s->[1]) >= 0;
	}
	return undef;
}

# a failing call or two whose messages an attacker reads
my @failures = (
	[ { kind => 'drop' }, 'wxhanded' ],
	[ { kind => 'http500' }, 'wxacct' ],
	[ { kind => 'notjson' }, undef ],
	[ { kind => 'errcode:40001', count => 2 }, 'wxhanded' ],
	[ { kind => 'errcode:40001', count => 2 }, 'wxacct' ],
);
my $fail_out = '';
for my $f (@failures)
{
	my ($fault, $appid) = @$f;
	my $id = sql(import_call('FAIL' . rnd(), $appid));
	settle(6);
	$stub->fault(%$fault);
	my ($rc, $out, $err) = as_role('uploader',
		"SELECT errcode, errmsg FROM shopping_upload.upload_shopping_info(${id}::pg_catalog.int8)");
	$stub->clear_faults;
	$fail_out .= "$out\n$err\n";
}
{
	# a request cancelled by statement_timeout, and one that does not exist
	my $id = sql(import_call('FAIL' . rnd(), 'wxhanded'));
	settle(6);
	$stub->fault(kind => 'delay', delay_ms => 2000);
	my ($rc, $out, $err) = as_role('uploader', "SET statement_timeout = '300ms';
		SELECT errcode, errmsg FROM shopping_upload.upload_shopping_info(${id}::pg_catalog.int8);
		RESET statement_timeout;
		SELECT errcode, errmsg FROM shopping_upload.upload_shopping_info(987654321::pg_catalog.int8);");
	$fail_out .= "$out\n$err\n";
	usleep(2_200_000);
	$stub->clear_faults;
	settle(6);
}
{
	# failing verify and shipping calls (the faults of their own paths)
	my $id = $ship_sent[0];
	for my $f ([ 'drop', '/user-order/shoppinginfo/verify', 'verify_shopping_info' ],
		[ 'errcode:40001', '/user-order/shoppinginfo/verify', 'verify_shopping_info' ],
		[ 'http500', '/user-order/orders/shippings', 'upload_shipping_info' ],
		[ 'notjson', '/user-order/orders/shippings', 'upload_shipping_info' ],
		[ 'errcode:40001', '/user-order/orders/shippings', 'upload_shipping_info' ])
	{
		my ($kind, $path, $fn) = @$f;
		$stub->fault(kind => $kind, path => $path);
		my ($rc, $out, $err) = as_role('uploader',
			"SELECT errcode, errmsg FROM shopping_upload.$fn(${id}::pg_catalog.int8)");
		$stub->clear_faults;
		$fail_out .= "$out\n$err\n";
	}
	# a verify and a shipping upload cancelled by statement_timeout
	for my $c ([ '/user-order/shoppinginfo/verify', 'verify_shopping_info' ],
		[ '/user-order/orders/shippings', 'upload_shipping_info' ])
	{
		$stub->fault(kind => 'delay', delay_ms => 2000, path => $c->[0]);
		my ($rc, $out, $err) = as_role('uploader', "SET statement_timeout = '300ms';
			SELECT errcode, errmsg FROM shopping_upload.$c->[1](${id}::pg_catalog.int8);");
		$fail_out .= "$out\n$err\n";
		usleep(2_200_000);
		$stub->clear_faults;
	}
	settle_ship(6);
}
# failing calls of the shipping management service: the uploader's by hand
# (each kind of fault on an order of its own, not queued, so that the
# worker's retry of one does not meet the next fault), the administrator's
# calls about the appid, an upload cancelled by statement_timeout, a
# made-up appid
my $trade_fail_out = '';
{
	my $n = 0;
	for my $kind ('drop', 'http500', 'notjson', 'errcode:40001', 'errcode:-1')
	{
		$n++;
		my $id = 680000 + $n;
		trade_unqueued_order($id);
		# the fault of each path once, then the calls in one session
		$stub->fault(kind => $kind, path => $_) for $TRADE_UPLOAD, $TRADE_GET, $TRADE_NOTIFY;
		my ($rc, $out, $err) = as_role('uploader',
			"SELECT errcode, errmsg FROM shopping_upload.upload_trade_shipping(${id}::pg_catalog.int8);
			SELECT shopping_upload.get_trade_order(${id}::pg_catalog.int8);
			SELECT errcode, errmsg FROM shopping_upload.notify_confirm_receive(${id}::pg_catalog.int8, pg_catalog.clock_timestamp());");
		$stub->clear_faults;
		$trade_fail_out .= "$out\n$err\n";
		$stub->fault(kind => $kind, path => $_) for @TRADE_APP_PATHS;
		($rc, $out, $err) = $node->psql('postgres', "SELECT shopping_upload.is_trade_managed();
			SELECT shopping_upload.set_msg_jump_path('pages/order/detail');
			SELECT shopping_upload.report_special_order($id, 'test');
			SELECT shopping_upload.refresh_delivery_companies();", on_error_stop => 0);
		$stub->clear_faults;
		$trade_fail_out .= "$out\n$err\n";
	}
	my $id = 680009;
	trade_unqueued_order($id);
	$stub->fault(kind => 'delay', delay_ms => 2000, path => $TRADE_UPLOAD);
	my ($rc, $out, $err) = as_role('uploader', "SET statement_timeout = '300ms';
		SELECT errcode, errmsg FROM shopping_upload.upload_trade_shipping(${id}::pg_catalog.int8);");
	$trade_fail_out .= "$out\n$err\n";
	($rc, $out, $err) = $node->psql('postgres', "SELECT shopping_upload.is_trade_managed('wxFAKETRADE');
		SELECT shopping_upload.set_msg_jump_path('pages/x', 'wxFAKETRADE');
		SELECT shopping_upload.get_trade_order(987654321::pg_catalog.int8);", on_error_stop => 0);
	$trade_fail_out .= "$out\n$err\n";
	usleep(2_200_000);
	$stub->clear_faults;
	settle_trade(10);
}
harvest_tokens();

my @hunts = (
	# label, SQL, must be refused?
	[ 'SHOW shopping_upload.secret', 'SHOW shopping_upload.secret', 1 ],
	[ 'SHOW ALL', 'SHOW ALL', 0 ],
	[ "current_setting('shopping_upload.secret')", "SELECT current_setting('shopping_upload.secret')", 1 ],
	[ "current_setting('shopping_upload.secret', true)", "SELECT current_setting('shopping_upload.secret', true)", 0 ],
	[ 'pg_settings', "SELECT name, setting, reset_val, boot_val, sourcefile FROM pg_settings WHERE name LIKE 'shopping_upload%'", 0 ],
	[ 'pg_show_all_settings()', "SELECT * FROM pg_show_all_settings() WHERE name LIKE 'shopping_upload%'", 0 ],
	[ 'pg_file_settings', 'SELECT * FROM pg_file_settings', 1 ],
	[ 'pg_show_all_file_settings()', 'SELECT * FROM pg_show_all_file_settings()', 1 ],
	[ 'pg_db_role_setting', 'SELECT * FROM pg_db_role_setting', 0 ],
	[ 'shopping_upload.accounts', 'SELECT * FROM shopping_upload.accounts', 1 ],
	[ 'COPY shopping_upload.accounts', 'COPY shopping_upload.accounts TO STDOUT', 1 ],
	[ 'pg_stats of accounts', "SELECT * FROM pg_stats WHERE schemaname = 'shopping_upload'", 0 ],
	[ 'token_cache()', 'SELECT * FROM shopping_upload.token_cache()', 0 ],
	[ 'set_access_token()', "SELECT shopping_upload.set_access_token('wxacct', 'stolen', now() + interval '1 hour')", 1 ],
	[ 'audit', 'SELECT * FROM shopping_upload.audit', 0 ],
	[ 'order_status', 'SELECT * FROM shopping_upload.order_status', 0 ],
	[ 'stats', 'SELECT * FROM shopping_upload.stats', 0 ],
	[ 'order_state', 'SELECT * FROM shopping_upload.order_state', 0 ],
	[ 'shipping_state', 'SELECT * FROM shopping_upload.shipping_state', 0 ],
	[ 'verify_shopping_info()', "SELECT * FROM shopping_upload.verify_shopping_info($ship_sent[0])", 0 ],
	[ 'upload_shipping_info()', "SELECT * FROM shopping_upload.upload_shipping_info($ship_sent[1])", 0 ],
	[ 'build_shipping_payload()', "SELECT shopping_upload.build_shipping_payload($ship_sent[1])", 0 ],
	[ 'pg_read_file(postgresql.conf)', "SELECT pg_read_file('postgresql.conf')", 1 ],
	[ 'pg_read_file(postgresql.auto.conf)', "SELECT pg_read_file('postgresql.auto.conf')", 1 ],
	[ 'pg_read_file(the secret file)', "SELECT pg_read_file(" . qt($secret_file) . ")", 1 ],
	[ 'pg_ls_logdir()', 'SELECT * FROM pg_ls_logdir()', 1 ],
	[ 'pg_stat_activity', 'SELECT query FROM pg_stat_activity', 0 ],
	[ 'pg_proc of the extension', "SELECT proname, proconfig, prosrc FROM pg_proc WHERE pronamespace = 'shopping_upload'::regnamespace", 0 ],
	[ 'SET shopping_upload.secret', "SET shopping_upload.secret = 'mine'", 1 ],
	[ 'ALTER ROLE self SET shopping_upload.secret', 'ALTER ROLE CURRENT_USER SET shopping_upload.secret = \'mine\'', 1 ],
	# the shipping management service's
	[ 'trade_state', 'SELECT * FROM shopping_upload.trade_state', 0 ],
	[ 'events', 'SELECT * FROM shopping_upload.events', 0 ],
	[ 'trade_apps', 'SELECT * FROM shopping_upload.trade_apps', 1 ],
	[ 'delivery_companies', 'SELECT * FROM shopping_upload.delivery_companies', 1 ],
	[ 'upload_trade_shipping()', "SELECT * FROM shopping_upload.upload_trade_shipping($trade_by_hand[0])", 0 ],
	[ 'get_trade_order()', "SELECT shopping_upload.get_trade_order($trade_by_hand[0])", 0 ],
	[ 'notify_confirm_receive()', "SELECT * FROM shopping_upload.notify_confirm_receive($trade_by_hand[0], now())", 0 ],
	[ 'build_trade_shipping_payload()', "SELECT shopping_upload.build_trade_shipping_payload($trade_by_hand[0])", 1 ],
	[ 'is_trade_managed()', 'SELECT shopping_upload.is_trade_managed()', 1 ],
	[ 'receive_event()', 'SELECT shopping_upload.receive_event(\'{"Event": "trade_manage_remind_access_api"}\')', 0 ],
);
for my $role (@attackers)
{
	# one session: statement i on line 2i after a marker; stdout is split at
	# the markers, stderr by the line numbers psql gives its messages
	my $script = join '', map { "\\echo ==HUNT $_==\n$hunts[$_][1];\n" } 0 .. $#hunts;
	my ($rc, $out, $err) = as_role($role, $script);
	my (%hout, %herr, $cur);
	for my $l (split /\n/, $out)
	{
		if ($l =~ /^==HUNT (\d+)==$/) { $cur = $1; next; }
		$hout{$cur} .= "$l\n" if defined $cur;
	}
	undef $cur;
	for my $l (split /\n/, $err)
	{
		$cur = int(($1 - 1) / 2) if $l =~ /^psql:<stdin>:(\d+):/;
		$herr{ $cur // -1 } .= "$l\n";
	}
	my ($exposed, @not_refused) = ('');
	for my $i (0 .. $#hunts)
	{
		my ($label, $q, $must_refuse) = @{ $hunts[$i] };
		my ($o, $e) = ($hout{$i} // '', $herr{$i} // '');
		my $what = leaked("$o\n$e");
		$exposed .= "$label shows $what; " if $what;
		push @not_refused, $label
		  if $must_refuse && $e !~ /permission denied|must be superuser|must be a member|not allowed|cannot be/;
	}
	my $stray = leaked($herr{-1} // '');
	$exposed .= "the session's other messages show $stray; " if $stray;
	check($exposed eq '', "$role finds no secret nor token in settings, catalogs, tables, views, functions",
		$exposed);
	check(!@not_refused, "$role is refused the secret's settings, the accounts, the files and set_access_token()",
		'not refused: ' . join(', ', @not_refused));
}
{
	my $what = leaked($fail_out);
	check(!defined $what, 'the messages of failing uploads, verifies and shipping uploads (drop, 500, not JSON, 40001, cancel, no order) hold no secret nor token',
		$what);
	my $audit = sql('SELECT audit::text FROM shopping_upload.audit');
	my $state = sql('SELECT order_state::text FROM shopping_upload.order_state');
	$what = leaked("$audit\n$state");
	check(!defined $what, 'no secret nor token in the audit rows (request, errmsg, transport_error) or order states',
		$what);
	$what = leaked($trade_fail_out);
	check(!defined $what && $trade_fail_out =~ /ERROR/,
		'the messages of the shipping management service\'s failing calls (upload_trade_shipping, get_trade_order, notify_confirm_receive by hand; is_trade_managed, set_msg_jump_path, report_special_order, refresh_delivery_companies; drop, 500, not JSON, 40001, -1, cancel, a made-up appid, no order) hold no secret nor token',
		$what // scalar(() = $trade_fail_out =~ /ERROR/g) . ' error messages read');
	my %rows = map { $_ => sql("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM shopping_upload.$_ t") }
	  qw(events trade_state trade_apps delivery_companies);
	$rows{audit} = sql("SELECT coalesce(string_agg(a::text, E'\\n'), '') FROM shopping_upload.audit a
		WHERE kind IN ('trade_shipping', 'trade_order', 'trade_confirm')");
	my $kinds = sql("SELECT string_agg(kind || ' ' || n || ' (' || failed || ' failed)', ', ' ORDER BY kind) FROM
		(SELECT kind, count(*) AS n, count(*) FILTER (WHERE errcode IS DISTINCT FROM 0) AS failed
		   FROM shopping_upload.audit WHERE kind IN ('trade_shipping', 'trade_order', 'trade_confirm') GROUP BY 1) x");
	$what = leaked(join("\n", map { $rows{$_} } sort keys %rows));
	check(!defined $what && $kinds =~ /trade_confirm \d+ \(\d*[1-9].*trade_order \d+ \(\d*[1-9].*trade_shipping \d+ \(\d*[1-9]/
		  && $rows{events} ne '',
		'no secret nor token in events, trade_state, trade_apps, delivery_companies, nor the audit rows of kinds trade_shipping, trade_order, trade_confirm (failed ones included)',
		($what // 'none found') . "; audit rows: $kinds");
}

# ---------------------------------------------------------------------
# 4. Session settings do not steer upload_shopping_info; made-up appids
# ---------------------------------------------------------------------
sub stub_since
{
	my ($seq, $path) = @_;
	return [ grep { $_->{seq} > $seq } @{ $stub->requests($path) } ];
}
sub stub_seq
{
	my $r = $stub->requests;
	return @$r ? $r->[-1]{seq} : 0;
}
sub token_appids_of_request { return $all_tokens{ $_[0]->{query}{access_token} // '' } // '?'; }

{
	# links of type URL: nothing in the order names an appid
	my $id = 300001;
	as_role('writer', join(";\n", 'SET shopping_upload.auto_upload = off', order_insert_sql($id)) . ";\n");
	settle(6);

	# appid: SET, set_config, connection options
	my @steer = (
		[ 'SET', "SET shopping_upload.appid = 'wxOTHER'", undef ],
		[ 'set_config()', "SELECT set_config('shopping_upload.appid', 'wxOTHER', false)", undef ],
		[ 'connection option', '', '-c shopping_upload.appid=wxOTHER' ],
	);
	for my $s (@steer)
	{
		my ($how, $set, $opts) = @$s;
		my $seq = stub_seq();
		my ($rc, $out, $err) = as_role('uploader',
			"$set;\nSELECT errcode, errmsg FROM shopping_upload.upload_shopping_info(${id}::pg_catalog.int8);",
			pgoptions => defined $opts ? "$ENV{PGOPTIONS} $opts" : undef);
		harvest_tokens();
		my $refused = $err =~ /permission denied|must be superuser|cannot be|not allowed/;
		my $no_session = $err =~ /FATAL/;    # the connection option was refused
		my @tok = @{ stub_since($seq, '/cgi-bin/stable_token') };
		my @other = grep { ($json->decode($_->{body})->{appid} // '') eq 'wxOTHER' } @tok;
		my @up = @{ stub_since($seq, '/user-order/orders') };
		my @apps = map { token_appids_of_request($_) } @up;
		my $audit_appid = sql("SELECT appid FROM shopping_upload.audit WHERE order_id = $id ORDER BY audit_id DESC LIMIT 1");
		check($no_session || (!@other && @up >= 1 && !grep({ $_ ne 'wxtestappid' } @apps) && $audit_appid eq 'wxtestappid'),
			"uploader's $how of shopping_upload.appid = 'wxOTHER' does not steer upload_shopping_info (configured appid's token used, no stable_token for wxOTHER)",
			($no_session ? 'connection refused; ' : $refused ? 'setting refused; ' : 'setting accepted; ')
			  . 'answer: ' . ($out || errors_of($err)) . '; stable_token calls for wxOTHER: ' . scalar(@other)
			  . (grep({ index($_->{body}, $SECRET) >= 0 } @other) ? ' (with the configured secret)' : '')
			  . "; uploads: " . scalar(@up) . " with tokens of [@apps]; audited appid $audit_appid");
	}

	# timeouts: every way a session can set them; ten calls or more
	my @tsteer = (
		[ 'SET', "SET shopping_upload.timeout = '1ms'; SET shopping_upload.connect_timeout = '1ms'", undef, 4 ],
		[ 'set_config()', "SELECT set_config('shopping_upload.timeout', '1ms', false); SELECT set_config('shopping_upload.connect_timeout', '1ms', false)", undef, 4 ],
		[ 'SET LOCAL', "BEGIN; SET LOCAL shopping_upload.timeout = '1ms'", undef, 2, 'COMMIT' ],
		[ 'connection option', '', '-c shopping_upload.timeout=1ms -c shopping_upload.connect_timeout=1ms', 2 ],
		[ 'ALTER ROLE self SET', "ALTER ROLE uploader SET shopping_upload.timeout = '1ms'", undef, 0 ],
		[ 'the role setting', '', undef, 2 ],
	);
	my ($calls, @answers, @accepted) = (0);
	for my $s (@tsteer)
	{
		my ($how, $set, $opts, $n, $end) = @$s;
		my $q = "$set;\n" . ("SELECT errcode FROM shopping_upload.upload_shopping_info(${id}::pg_catalog.int8);\n" x $n)
		  . ($end ? "$end;\n" : '');
		my ($rc, $out, $err) = as_role('uploader', $q,
			pgoptions => defined $opts ? "$ENV{PGOPTIONS} $opts" : undef);
		my @codes = grep { /^-?\d+$/ } split /\n/, $out;
		$calls += @codes;
		push @answers, "$how: [@codes]";
		push @accepted, $how if $set ne '' && $err !~ /permission denied|must be superuser|cannot be|not allowed/
		  || defined $opts && $err !~ /permission denied|must be superuser/;
	}
	sql('ALTER ROLE uploader RESET ALL');
	my $state = sql("SELECT state || ' after ' || attempts || ' attempts' FROM shopping_upload.order_state WHERE order_id = $id");
	check(!@accepted, "uploader's session cannot set shopping_upload.timeout / connect_timeout",
		'accepted by: ' . join(', ', @accepted));
	check($calls >= 10 && $state !~ /^dead/,
		"$calls uploads after the uploader set 1 ms timeouts do not make the order dead",
		"state: $state; answers: " . join('; ', @answers));
	my ($rc, $out, $err) = as_role('uploader',
		"SELECT errcode, errmsg FROM shopping_upload.upload_shopping_info(${id}::pg_catalog.int8)");
	is($out, '0|ok', 'the order still uploads in a plain session') or diag $err;
}

{
	# 70 orders of appids that have no secret, account nor token
	my $seq = stub_seq();
	my $imports = join ";\n", map { import_call(sprintf('FAKE%06d', $_), "wxFAKE$_") } 1 .. 70;
	my ($rc, $out, $err) = as_role('writer', "$imports;");
	my @ids = split /\n/, $out;
	my $calls = join '', map { "SELECT errcode FROM shopping_upload.upload_shopping_info(${_}::pg_catalog.int8);\n" } @ids;
	($rc, $out, $err) = as_role('uploader', $calls);
	my %codes;
	$codes{$_}++ for grep { /^-?\d+$/ } split /\n/, $out;
	# the same with the appid set in the session (an order whose appid is NULL)
	my $nul = 300002;
	as_role('writer', join(";\n", 'SET shopping_upload.auto_upload = off', order_insert_sql($nul)) . ";\n");
	settle(6);
	for my $k (71 .. 75)
	{
		as_role('uploader', "SET shopping_upload.appid = 'wxFAKE$k';
			SELECT errcode FROM shopping_upload.upload_shopping_info(${nul}::pg_catalog.int8);");
	}
	usleep(500_000);    # the worker tries them too
	my $slots = sql("SELECT count(*) FROM shopping_upload.token_cache() WHERE appid LIKE 'wxFAKE%'");
	my @tok = grep { ($json->decode($_->{body})->{appid} // '') =~ /^wxFAKE/ } @{ stub_since($seq, '/cgi-bin/stable_token') };
	my $with_secret = grep { index($_->{body}, $SECRET) >= 0 } @tok;
	my $all_slots = sql('SELECT count(*) FROM shopping_upload.token_cache()');
	check($slots eq '0', 'made-up appids (70 orders, 5 session appids) take no slot of the token cache',
		"$slots slots of wxFAKE appids, $all_slots slots in all; answers: "
		  . join(', ', map { "$_ x$codes{$_}" } sort keys %codes));
	check(!@tok, 'no stable_token call is made for a made-up appid, nor the secret sent for one',
		scalar(@tok) . " calls, $with_secret with the configured secret, for "
		  . join(' ', map { $json->decode($_->{body})->{appid} } @tok[0 .. ($#tok < 4 ? $#tok : 4)]));
	settle(6);
}

# ---------------------------------------------------------------------
# 4b. Writers limited to appids (appid_grants): a writer of merchant A
# reads, writes, changes, deletes and uploads nothing of merchant B's
# ---------------------------------------------------------------------
{
	sql('CREATE ROLE writer_a LOGIN; GRANT writer, uploader TO writer_a');
	my $b_id = 310001;
	sql(join(";\n", 'BEGIN', order_insert_sql($b_id, '43000'),
		"UPDATE shopping_upload.orders SET appid = 'wxMERCHANTB' WHERE order_id = $b_id", 'COMMIT'));
	my $b_before = sql("SELECT row(o.*)::text || (SELECT string_agg(row(i.*)::text, ',' ORDER BY item_no)
		FROM shopping_upload.items i WHERE i.order_id = o.order_id) FROM shopping_upload.orders o WHERE order_id = $b_id");
	sql("SELECT shopping_upload.grant_appid('writer_a', 'wxtestappid')");
	is(sql("SELECT count(*) FROM pg_class WHERE relnamespace = 'shopping_upload'::regnamespace AND relrowsecurity"),
		'6', 'grant_appid() turns row level security on for the six order and shipping tables');
	my @tries = (
		[ 'insert an order of B', join(";\n", 'BEGIN', order_insert_sql(310002, '43000'),
			"UPDATE shopping_upload.orders SET appid = 'wxMERCHANTB' WHERE order_id = 310002", 'COMMIT') ],
		[ 'import an order for B', "SELECT shopping_upload.import_order('"
			  . SuStub::order_json(out_trade_no => 'MERCHB0001', appid => 'wxMERCHANTB') . "', 'wxMERCHANTB')" ],
		[ 'change B\'s order', "UPDATE shopping_upload.orders SET openid = 'stolen' WHERE order_id = $b_id" ],
		[ 'delete B\'s order', "DELETE FROM shopping_upload.orders WHERE order_id = $b_id" ],
		[ 'add an item to B\'s order', "INSERT INTO shopping_upload.items (order_id, sub_order_no, item_no, name)
			VALUES ($b_id, 0, 9, 'planted')" ],
		[ 'change B\'s items', "UPDATE shopping_upload.items SET name = 'stolen' WHERE order_id = $b_id" ],
		[ 'add shipping information to B\'s order', "INSERT INTO shopping_upload.shippings (order_id, delivery_mode)
			VALUES ($b_id, 1)" ],
		[ 'upload B\'s order by hand', "SELECT errcode FROM shopping_upload.upload_shopping_info(${b_id}::pg_catalog.int8)" ],
		[ 'move an order of its own to B', join(";\n", 'BEGIN', order_insert_sql(310003, '43000'),
			"UPDATE shopping_upload.orders SET appid = 'wxMERCHANTB' WHERE order_id = 310003", 'COMMIT') ],
		[ 'SET ROLE to its unlimited group, then change B\'s order', "SET ROLE writer;
			UPDATE shopping_upload.orders SET openid = 'stolen' WHERE order_id = $b_id;
			SELECT count(*) FROM shopping_upload.orders WHERE order_id = $b_id" ],
		[ 'SET ROLE to its unlimited group, then upload B\'s order', "SET ROLE uploader;
			SELECT errcode FROM shopping_upload.upload_shopping_info(${b_id}::pg_catalog.int8)" ]);
	my @holes;
	for my $t (@tries)
	{
		my ($rc, $out, $err) = as_role('writer_a', $t->[1]);
		push @holes, "$t->[0]: " . ($out =~ s/\s+/ /gr) unless failed($err) || $out eq '' || $out =~ /^\s*0?\s*$/;
	}
	my $b_after = sql("SELECT row(o.*)::text || (SELECT string_agg(row(i.*)::text, ',' ORDER BY item_no)
		FROM shopping_upload.items i WHERE i.order_id = o.order_id) FROM shopping_upload.orders o WHERE order_id = $b_id");
	check($b_after eq $b_before && !@holes
		  && sql("SELECT count(*) FROM shopping_upload.orders WHERE appid = 'wxMERCHANTB' AND order_id <> $b_id") eq '0'
		  && sql("SELECT count(*) FROM shopping_upload.audit WHERE order_id = $b_id AND via = 'sql'") eq '0'
		  && sql("SELECT count(*) FROM shopping_upload.shippings WHERE order_id = $b_id") eq '0',
		'writer of merchant A: writes, changes, deletes and uploads nothing of merchant B\'s',
		join('; ', @holes) . ($b_after eq $b_before ? '' : " B's order changed: $b_after")
		  . ' other orders of B: ' . sql("SELECT string_agg(order_id::text, ',') FROM shopping_upload.orders WHERE appid = 'wxMERCHANTB' AND order_id <> $b_id")
		  . '; audit rows of B by hand: ' . sql("SELECT count(*) FROM shopping_upload.audit WHERE order_id = $b_id AND via = 'sql'")
		  . '; shippings of B: ' . sql("SELECT count(*) FROM shopping_upload.shippings WHERE order_id = $b_id"));
	my ($rc, $out, $err) = as_role('writer_a', 'SELECT count(*) FROM shopping_upload.orders WHERE appid = \'wxMERCHANTB\'');
	check($out eq '0', 'writer of merchant A: sees none of merchant B\'s orders', $out . errors_of($err));
	# not queued (auto_upload off): the worker would take it meanwhile, and a
	# call by hand of an order in flight is refused, whoever makes it
	($rc, $out, $err) = as_role('writer_a', join(";\n", 'SET shopping_upload.auto_upload = off', 'BEGIN',
			order_insert_sql(310004, '43000'), 'COMMIT')
		  . ";\nSELECT count(*) FROM shopping_upload.orders WHERE order_id = 310004");
	check(!failed($err) && $out =~ /^1$/m, 'writer of merchant A: writes orders of A as before', errors_of($err));
	($rc, $out, $err) = as_role('writer_a', "SELECT errcode FROM shopping_upload.upload_shopping_info(310004::pg_catalog.int8)");
	check(!failed($err), 'writer of merchant A: uploads its own orders by hand', errors_of($err));
	sql("SELECT shopping_upload.revoke_appid('writer_a', 'wxtestappid')");
	is(sql("SELECT count(*) FROM pg_class WHERE relnamespace = 'shopping_upload'::regnamespace AND relrowsecurity"),
		'0', 'once no role is limited, row level security is off again');
	($rc, $out, $err) = as_role('writer_a', "SELECT count(*) FROM shopping_upload.orders WHERE order_id = $b_id");
	is($out, '1', 'and the writer is no longer limited');
	sql("DELETE FROM shopping_upload.orders WHERE order_id IN ($b_id, 310002, 310003, 310004); DROP ROLE writer_a");
	settle(6);
}

# ---------------------------------------------------------------------
# 5. DROP DATABASE by one who may not; ALTER DATABASE ... SET by its owner
# ---------------------------------------------------------------------
{
	my $pid0 = worker_pid();
	my @tries;
	BAIL_OUT('writer is superuser: a DROP DATABASE test would drop the database') if supers() =~ /writer/;
	for my $db (qw(postgres template1))
	{
		for my $stmt ('DROP DATABASE postgres', 'DROP DATABASE IF EXISTS postgres',
			'DROP DATABASE postgres WITH (FORCE)')
		{
			my ($rc, $out, $err) = as_role('writer', $stmt, db => $db);
			push @tries, "$stmt from $db: " . (failed($err) ? (errors_of($err) =~ s/.*(ERROR|FATAL):\s*//r) : 'SUCCEEDED');
		}
	}
	diag "writer: $_" for @tries;
	is(scalar(grep { /SUCCEEDED/ } @tries), 0, 'writer cannot drop the worker\'s database');
	usleep(1_000_000);
	my $pid1 = worker_pid();
	check($pid0 ne '' && $pid1 eq $pid0,
		'a DROP DATABASE of the worker\'s database by writer (not its owner) does not stop the worker',
		"worker pid before $pid0, a second later '$pid1'");
	my $t0 = time;
	as_role('writer', join(";\n", 'BEGIN', order_insert_sql(300003), 'COMMIT') . ";\n");
	my $prompt = wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = 300003", 'uploaded', 5);
	check($prompt, 'an order written right after is uploaded promptly (within 5 s)',
		sprintf('%.1f s', time - $t0));
	wait_for("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'", '1', 20)
	  or diag 'the worker did not come back';
	settle(8);
}

{
	# the database owner stores settings for every session of its database,
	# the worker's included (pg_db_role_setting)
	my @sets = (
		"ALTER DATABASE postgres SET shopping_upload.appid = 'wxDBOWNER'",
		"ALTER DATABASE postgres SET shopping_upload.timeout = '1ms'",
		"ALTER DATABASE postgres SET shopping_upload.connect_timeout = '1ms'",
		"ALTER DATABASE postgres SET search_path = public, pg_catalog",
		"ALTER DATABASE postgres SET shopping_upload.max_attempts = 1",
		"ALTER DATABASE postgres SET shopping_upload.verify_delay = 0",
		"ALTER DATABASE postgres SET shopping_upload.api_base_url = 'http://127.0.0.1:9'",
		"ALTER DATABASE postgres SET shopping_upload.trade_managed = off",
		"ALTER DATABASE postgres SET shopping_upload.payment_wait = 1",
		"ALTER DATABASE postgres SET shopping_upload.reconcile_interval = 1",
	);
	my @accepted;
	for my $s (@sets)
	{
		my ($rc, $out, $err) = as_role('dbowner', $s);
		push @accepted, ($s =~ s/ALTER DATABASE postgres SET //r) unless failed($err);
	}
	diag 'dbowner stored: ' . (join(', ', @accepted) || 'nothing');
	my @trade_set = grep { /trade_managed|payment_wait|reconcile_interval/ } @accepted;
	check(!@trade_set, 'dbowner cannot store the service\'s settings (trade_managed, payment_wait, reconcile_interval) for its database',
		'stored: ' . join(', ', @trade_set));
	my $pid0 = worker_pid();
	sql("SELECT pg_terminate_backend($pid0)");    # as after any restart
	wait_for("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker' AND pid <> $pid0",
		'1', 15)
	  or diag 'no new worker';
	my $seq = stub_seq();
	$stub->fault(kind => 'expire_tokens');    # the worker must fetch a token now
	my $id = 300004;
	my ($rc, $out, $err) = as_role('writer', join(";\n", 'BEGIN', order_insert_sql($id), 'COMMIT') . ";\n");
	my $uploaded = wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'uploaded', 8);
	harvest_tokens();
	my @tok = grep { ($json->decode($_->{body})->{appid} // '') eq 'wxDBOWNER' } @{ stub_since($seq, '/cgi-bin/stable_token') };
	my @up = @{ stub_since($seq, '/user-order/orders') };
	my $state = sql("SELECT coalesce(state, 'none') || ' ' || coalesce(last_errcode::text, '') || ' ' || coalesce(last_errmsg, '')
		FROM shopping_upload.order_status WHERE order_id = $id");
	check($uploaded && !@tok,
		'ALTER DATABASE ... SET by the database owner (appid, timeouts, search_path, max_attempts) does not steer the worker',
		"stored: @accepted; order $id: $state; stable_token calls for wxDBOWNER: " . scalar(@tok)
		  . '; upload tokens of [' . join(' ', map { token_appids_of_request($_) } @up) . ']');
	# the uploader's sessions get them too
	($rc, $out, $err) = as_role('uploader',
		"SELECT errcode, errmsg FROM shopping_upload.upload_shopping_info(${id}::pg_catalog.int8)");
	check($out eq '0|ok', 'nor upload_shopping_info in the sessions of that database', $out || errors_of($err));
	sql('ALTER DATABASE postgres RESET ALL');
	$pid0 = worker_pid();
	sql("SELECT pg_terminate_backend($pid0)") if $pid0;
	wait_for("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker' AND pid <> " . ($pid0 || 0),
		'1', 15);
	settle(8);
}

# ---------------------------------------------------------------------
# What ran, where, as whom
# ---------------------------------------------------------------------
my $runs = sql("SELECT planter, current_user_, fn, coalesce(backend, '?'), got_super, count(*)
	FROM public.pwned GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4");
for my $l (split /\n/, $runs)
{
	my ($p, $cu, $fn, $be, $got, $n) = split /\|/, $l;
	diag sprintf('planted %s (by %s) ran as %s in %s%s%s', $fn, $p, $cu, $be,
		$got eq 't' ? ' and made its planter SUPERUSER' : '', $p ne $cu ? '   <-- HOLE' : '');
}
my $foreign = sql('SELECT count(*) FROM public.pwned WHERE current_user_ <> planter');
check($foreign eq '0', 'no planted object ever ran as anyone but its planter (public.pwned)',
	"$foreign runs as another role");
{
	# the log has every run, committed or not, and the statement that ran it
	my $log = slurp_file($node->logfile);
	my %foreign;
	my @entries = split /\n(?=\d{4}-\d\d-\d\d )/, $log;
	for my $i (0 .. $#entries)
	{
		# the CONTEXT of a message is the next entry, written with it
		my $entry = $entries[$i] . ($i < $#entries && $entries[ $i + 1 ] =~ /CONTEXT:/ ? "\n$entries[$i + 1]" : '');
		next unless $entry =~ /PWNED planter=(\w+) current_user=(\w+) session_user=\S+ fn=(\S+) backend=(\S+)/;
		my ($p, $cu, $fn, $be) = ($1, $2, $3, $4);
		next if $p eq $cu;
		my @stmts = ($entry =~ /SQL statement "([^\n]*)/g);
		my $from = @stmts > 1 ? $stmts[-1] =~ s/"$//r : '(a statement of the session)';
		$from = substr($from, 0, 160) . '...' if length $from > 160;
		$foreign{"$fn (planted by $p) ran as $cu in $be, called from: $from"}++;
	}
	diag "ran as another role: $_" for sort keys %foreign;
	check(!%foreign, 'nor did one in a transaction that rolled back (server log)',
		scalar(keys %foreign) . ' planted objects ran as another role');
	my $shop2 = sql("SELECT coalesce(string_agg(DISTINCT fn || ' by ' || planter || ' as ' || current_user_, '; '), '')
		FROM public.pwned WHERE current_user_ <> planter", 'shop2');
	check($shop2 eq '', 'nor in shop2, where dbowner had planted in the extension\'s schema', $shop2);
}
my $supers = supers();
check($supers eq '', 'no attacker became superuser in the later phases', "superusers now: $supers");

# ---------------------------------------------------------------------
# The secret changes at log_min_messages = debug5; the log holds no secret
# ---------------------------------------------------------------------
{
	my $logpos = -s $node->logfile;
	$node->append_conf('postgresql.conf', "log_min_messages = debug5\nshopping_upload.secret = '$ROTATED1'\n");
	$node->reload;
	usleep(1_500_000);
	if ($defined{secret_file})
	{
		my $f2 = "$dir/app_secret_2";
		write_secret_file($f2, $ROTATED2);
		$node->append_conf('postgresql.conf', "shopping_upload.secret_file = '$f2'\n");
		$node->reload;
		usleep(1_000_000);
	}
	else
	{
		diag 'shopping_upload.secret_file is not defined: the secret file part is skipped';
	}
	# the new secret is read and sent: by the worker and by a backend
	$stub->fault(kind => 'expire_tokens');
	my $id = 300005;
	as_role('writer', join(";\n", 'BEGIN', order_insert_sql($id), 'COMMIT') . ";\n");
	usleep(1_000_000);
	as_role('uploader', "SELECT errcode FROM shopping_upload.upload_shopping_info(${id}::pg_catalog.int8)");
	$node->append_conf('postgresql.conf', "log_min_messages = warning\n");
	$node->reload;
	usleep(300_000);
	harvest_tokens();
	$node->stop;

	my $log = slurp_file($node->logfile);
	for my $s ([ 'the configured secret', $SECRET ], [ 'the secret changed in postgresql.conf', $ROTATED1 ],
		$defined{secret_file} ? ([ 'the secret of the new secret file', $ROTATED2 ]) : (),
		[ 'the accounts secret', $ACCT_SECRET ], [ 'the handed-in token', $HANDED_TOKEN ])
	{
		my ($name, $v) = @$s;
		my @where = map { s/\Q$v\E/<$name>/gr } grep { index($_, $v) >= 0 } split /\n/, $log;
		check(!@where, "the server log holds not $name", $where[0]);
	}
	my @leaks = grep { index($log, $_) >= 0 } keys %all_tokens;
	check(!@leaks, 'the server log holds none of the ' . scalar(keys %all_tokens) . ' tokens the stand-in issued or saw',
		scalar(@leaks) . ' found, of ' . join(', ', map { $all_tokens{$_} } @leaks));
}

diag sprintf('%d attacks: %d held, %d holes; %.0f s', scalar(@report),
	scalar(grep { $_->[0] } @report), scalar(grep { !$_->[0] } @report), time - $t_start);
diag "HOLE: $_->[1]" for grep { !$_->[0] } @report;

done_testing();
