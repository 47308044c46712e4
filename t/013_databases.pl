# Every database that has the extension: a worker each, started and stopped
# by the launcher with no restart; databases left out by the settings, or
# without the extension, cost nothing; one appid's rate shared by the
# workers of two databases; two workers for one database; and the WARNING
# when background worker slots run out.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use SuStub;

my $dir = PostgreSQL::Test::Utils::tempdir();
my $stub = SuStub->start(dir => $dir);
my $stub2 = SuStub->start(dir => $dir, name => 'stub2');

my $node = SuStub::node(conf => <<"EOC");
shopping_upload.api_base_url = '${\ $stub->url}'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret = 'testsecret'
shopping_upload.retry_base_delay = '50ms'
shopping_upload.retry_max_delay = '200ms'
shopping_upload.lease = '30s'
EOC

sub sql { my ($db, $q) = @_; return $node->safe_psql($db, $q); }
sub wait_for
{
	my ($db, $query, $expected, $name) = @_;
	ok($node->poll_query_until($db, $query, $expected), $name);
}
my $n = 0;
sub import_sql
{
	my $j = SuStub::order_json(out_trade_no => sprintf('D%011d', ++$n), @_);
	return "shopping_upload.import_order('$j')";
}
sub import_orders
{
	my ($db, $count) = @_;
	return sql($db, 'SELECT ' . join(', ', map { import_sql() } 1 .. $count));
}
sub pending
{
	return "SELECT count(*) FROM shopping_upload.order_state WHERE state <> 'uploaded'";
}
# the workers of a database, as pg_stat_activity shows them
sub workers_of
{
	return sql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker' AND datname = '$_[0]'");
}
sub state_of
{
	return sql('postgres', "SELECT state FROM shopping_upload.workers WHERE database = '$_[0]'");
}
# seconds until a query returns the expected value (undef: not in 60 s)
sub seconds_until
{
	my ($db, $query, $expected) = @_;
	my $t0 = time;
	while (time - $t0 < 60)
	{
		return time - $t0 if sql($db, $query) eq $expected;
		select(undef, undef, undef, 0.1);
	}
	return undef;
}
sub reload
{
	my ($setting, $value) = @_;
	sql('postgres', "ALTER SYSTEM SET $setting = '$value'");
	$node->reload;
}

# --- the database the node made the extension in is served
wait_for('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'",
	'1', 'a worker serves the database with the extension');
is(state_of('postgres'), 'served', 'the workers view says so');
is(state_of('template1'), 'excluded', 'a template is skipped');
is(sql('postgres', "SELECT count(*) FROM shopping_upload.workers WHERE database = 'template0' AND state = 'excluded'"),
	'1', 'so is a database that allows no connections');
ok($node->log_contains(qr/serving database "postgres"/), 'the log names the database served');

# --- a database created after start, without the extension: one look
sql('postgres', 'CREATE DATABASE plain');
wait_for('postgres', "SELECT state FROM shopping_upload.workers WHERE database = 'plain'",
	'no_extension', 'a new database without the extension is looked at once');
my $logpos = -s $node->logfile;
sleep 12;    # two scans of pg_database by the launcher
is(workers_of('plain'), '0', 'and no worker stays for it');
is(sql('postgres', "SELECT workers FROM shopping_upload.workers WHERE database = 'plain'"), '0',
	'no worker slot is held for it');
my $log = slurp_file($node->logfile, $logpos);
unlike($log, qr/"plain"/, 'and no log line repeats for it');

# --- CREATE EXTENSION is enough: a worker within 10 s, no restart.  The
# database's defaults make every transaction read-only and SERIALIZABLE: the
# worker's are its own (READ COMMITTED, read-write)
sql('plain', "ALTER DATABASE plain SET default_transaction_read_only = on;
	ALTER DATABASE plain SET default_transaction_isolation = 'serializable'");
my $rw = 'SET default_transaction_read_only = off;';
sql('plain', "$rw CREATE EXTENSION shopping_upload");
my $took = seconds_until('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker' AND datname = 'plain'", '1');
ok(defined $took && $took < 10, sprintf('CREATE EXTENSION: its worker runs within 10 s (%.1f s)', $took // -1));
is(sql('plain', 'SHOW default_transaction_read_only'), 'on', 'the database\'s sessions are read-only by default');
sql('plain', "$rw SELECT " . join(', ', map { import_sql() } 1 .. 3));
wait_for('plain', pending(), '0', 'its orders are uploaded, by a worker whose transactions are its own');
sql('plain', "$rw ALTER DATABASE plain RESET default_transaction_read_only;
	ALTER DATABASE plain RESET default_transaction_isolation");

# --- one appid, two databases, one rate
reload('shopping_upload.max_rate', '10');
$stub->reset;
my $t0 = time;
import_orders('plain', 30);
import_orders('postgres', 30);
wait_for('plain', pending(), '0', 'a burst in one database is uploaded under max_rate');
wait_for('postgres', pending(), '0', 'and the burst in the other');
my @t = sort { $a <=> $b } map { $_->{time} } @{ $stub->requests('/user-order/orders') };
is(scalar @t, 60, 'every order of both databases was sent once');
my $worst = 0;
for my $i (0 .. $#t)
{
	my $c = grep { $_ >= $t[$i] && $_ < $t[$i] + 1 } @t;
	$worst = $c if $c > $worst;
}
# One bucket for the appid: a full bucket (10) plus 10 a second, 20 in any
# second (23 with the bunching of arrivals, as in t/002); a bucket per
# database would let 40 through.
ok($worst <= 23, "two databases share the appid's max_rate (worst second: $worst of 60 orders)");
reload('shopping_upload.max_rate', '0');

# --- the shared token cache serves only a database with the appid's
# credentials: in "plain" the server-wide appid is unset (its secret file
# then belongs to no appid there), and an order of wxtestappid, whose token
# the cache holds for "postgres", is not sent on it
sql('postgres', q{ALTER DATABASE plain SET shopping_upload.appid = ''});
sql('postgres', q{SELECT pg_terminate_backend(pid, 30000) FROM pg_stat_activity
	WHERE backend_type = 'shopping_upload worker' AND datname = 'plain'});
wait_for('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker' AND datname = 'plain'",
	'1', 'the worker of "plain" is back, with its database\'s settings');
$stub->reset;
my ($tenant) = split /\n/, import_orders('plain', 1);
wait_for('plain', "SELECT state || ' ' || last_errcode FROM shopping_upload.order_state WHERE order_id = $tenant",
	'held 41004', "an order of another database's appid, in a database without its credentials, is held (41004)");
is(scalar @{ $stub->requests('/user-order/orders') }, 0, 'and never sent on the cached token');
sql('postgres', q{ALTER DATABASE plain RESET shopping_upload.appid});
sql('postgres', q{SELECT pg_terminate_backend(pid, 30000) FROM pg_stat_activity
	WHERE backend_type = 'shopping_upload worker' AND datname = 'plain'});
wait_for('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker' AND datname = 'plain'",
	'1', 'the worker of "plain" is back');
sql('plain', "SELECT shopping_upload.requeue(NULL, '{held}')");
wait_for('plain', pending(), '0', 'with the credentials back, the order is uploaded');

# --- a copy of a database is served too (and CREATE DATABASE ... TEMPLATE
# of a served database is not refused for its worker)
$logpos = -s $node->logfile;
sql('postgres', 'CREATE DATABASE copy TEMPLATE plain');
pass('CREATE DATABASE ... TEMPLATE a served database succeeds');
wait_for('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker' AND datname = 'copy'",
	'1', 'a copy of a database with the extension gets its own worker');
ok($node->wait_for_log(qr/serving database "copy"/, $logpos), 'and the log names it');
wait_for('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker' AND datname = 'plain'",
	'1', 'the worker of the template is back');

# --- DROP DATABASE while its worker uploads
$stub->fault(kind => 'delay', delay_ms => 300, count => 1000);
import_orders('copy', 20);
sleep 1;
$t0 = time;
my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE copy');
is($ret, 0, 'DROP DATABASE of a database whose worker uploads succeeds') or diag $err;
note(sprintf('DROP DATABASE took %.1f s', time - $t0));
$stub->clear_faults;
is(workers_of('copy'), '0', 'its worker is gone');
wait_for('postgres', "SELECT count(*) FROM shopping_upload.workers WHERE database = 'copy'", '0',
	'and the launcher forgets the database');

# --- DROP EXTENSION stops the worker within seconds
sql('plain', 'DROP EXTENSION shopping_upload');
$took = seconds_until('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker' AND datname = 'plain'", '0');
ok(defined $took && $took < 10, sprintf('DROP EXTENSION: its worker stops within seconds (%.1f s)', $took // -1));
wait_for('postgres', "SELECT state FROM shopping_upload.workers WHERE database = 'plain'", 'no_extension',
	'the database is known to have no extension');

# --- shopping_upload.databases leaves a database out, and takes it back
reload('shopping_upload.databases', '*, !postgres');
wait_for('postgres', "SELECT state FROM shopping_upload.workers WHERE database = 'postgres'", 'excluded',
	'a database left out by shopping_upload.databases');
wait_for('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'",
	'0', 'loses its worker');
my $held = import_orders('postgres', 1);
sleep 2;
is(sql('postgres', pending()), '1', 'and its orders wait');
like(sql('postgres', "SELECT detail FROM shopping_upload.check_setup() WHERE item = 'database'"),
	qr/leaves this database \("postgres"\) out/, 'check_setup() says why');
reload('shopping_upload.databases', 'postgres');
wait_for('postgres', pending(), '0', 'listed by name, it is served again');
reload('shopping_upload.databases', '*');
my ($rc, $o, $e) = $node->psql('postgres', q{ALTER SYSTEM SET shopping_upload.databases = 'shop,,staging'});
like($e, qr/invalid value for parameter "shopping_upload.databases".*\n.*comma-separated list/,
	'a list with an empty name is refused, and the error says what a list is');

# --- database_name still works, as a list of one
reload('shopping_upload.database_name', 'elsewhere');
wait_for('postgres', "SELECT state FROM shopping_upload.workers WHERE database = 'postgres'", 'excluded',
	'shopping_upload.database_name names the one database served');
reload('shopping_upload.database_name', '');
wait_for('postgres', "SELECT state FROM shopping_upload.workers WHERE database = 'postgres'", 'served',
	'empty, every database is');

# --- two workers for one database: each order sent once; SIGHUP reaches both
reload('shopping_upload.workers_per_database', '2');
wait_for('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'",
	'2', 'workers_per_database = 2 starts a second worker');
is(sql('postgres', "SELECT workers || '/' || wanted FROM shopping_upload.workers WHERE database = 'postgres'"),
	'2/2', 'the workers view counts both');
$stub->reset;
import_orders('postgres', 400);
wait_for('postgres', pending(), '0', 'a backlog is uploaded by both');
my %seen;
$seen{ $stub->decode($_->{body})->{order_key}{out_trade_no} }++
  for grep { ($_->{errcode} // -1) == 0 } @{ $stub->requests('/user-order/orders') };
is(scalar(keys %seen), 400, 'every order of the backlog reached WeChat');
is(scalar(grep { $_ > 1 } values %seen), 0, 'none twice');
my %by_pid = map { split /\|/ } split /\n/,
  sql('postgres', "SELECT pid, count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker' GROUP BY 1");
is(scalar(keys %by_pid), 2, 'two worker processes');

reload('shopping_upload.api_base_url', $stub2->url);
$stub->reset;
$stub2->reset;
sleep 1;
import_orders('postgres', 40);
wait_for('postgres', pending(), '0', 'orders after a reload are uploaded');
is(scalar(grep { ($_->{errcode} // -1) == 0 } @{ $stub2->requests('/user-order/orders') }), 40,
	'SIGHUP reached both workers: every share goes to the new api_base_url');
is(scalar @{ $stub->requests('/user-order/orders') }, 0, 'none to the old one');
reload('shopping_upload.api_base_url', $stub->url);

# three workers, one leaving in the middle of a backlog: its share is taken
# over, under the lock every claim holds (no two claims see other shares)
reload('shopping_upload.workers_per_database', '3');
wait_for('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'",
	'3', 'workers_per_database = 3 starts a third worker');
$stub->reset;
$stub->fault(kind => 'delay', delay_ms => 20, count => 100000);
import_orders('postgres', 600);
sleep 1;
reload('shopping_upload.workers_per_database', '2');
wait_for('postgres', pending(), '0', 'a backlog is uploaded while a worker leaves');
$stub->clear_faults;
%seen = ();
$seen{ $stub->decode($_->{body})->{order_key}{out_trade_no} }++
  for grep { ($_->{errcode} // -1) == 0 } @{ $stub->requests('/user-order/orders') };
is(scalar(keys %seen), 600, 'every order reached WeChat');
is(scalar(grep { $_ > 1 } values %seen), 0, 'none twice, the leaving worker\'s included');
reload('shopping_upload.workers_per_database', '1');
wait_for('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'",
	'1', 'back to one worker');
import_orders('postgres', 20);
wait_for('postgres', pending(), '0', 'which uploads every share');

# --- worker slots run out: one WARNING, and served once a slot frees up
# The background worker slots: logical replication's launcher, ours, and
# two workers; three databases with the extension.
$node->append_conf('postgresql.conf', "max_worker_processes = 4\n");
$node->restart;
sql('plain', 'CREATE EXTENSION shopping_upload');
sql('postgres', 'CREATE DATABASE third');
sql('third', 'CREATE EXTENSION shopping_upload');
wait_for('postgres', "SELECT count(*) FROM shopping_upload.workers WHERE state = 'no_slot'", '1',
	'a database is left without a worker when slots run out');
my $unserved = sql('postgres', 'SELECT databases_unserved FROM shopping_upload.stats');
like($unserved, qr/^(postgres|plain|third)$/, "stats names it ($unserved)");
ok($node->wait_for_log(qr/WARNING:  shopping_upload launcher: no background worker slot is free for database "\Q$unserved\E": their orders are queued but not uploaded/),
	'a WARNING names it');
ok($node->log_contains(qr/HINT:  Raise max_worker_processes/), 'and the setting to raise');
sleep 6;
my @warnings = (slurp_file($node->logfile) =~ /no background worker slot is free/g);
is(scalar @warnings, 1, 'once, not at every try');
import_orders($unserved, 2);
my $other = $unserved eq 'third' ? 'plain' : 'third';
sql($other, 'DROP EXTENSION shopping_upload');
wait_for($unserved, pending(), '0', 'once a slot frees up, the database left out is served');
is(sql('postgres', 'SELECT databases_unserved IS NULL FROM shopping_upload.stats'), 't',
	'and stats says every database is served');
ok($node->wait_for_log(qr/every database with the extension has its workers again/), 'the log says so');

$node->stop;
done_testing();
