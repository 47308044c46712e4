# Soak: writers insert, update and delete orders with plain SQL, store and
# change their shipping information, and call upload_shopping_info(), all at
# once, for SOAK_SECONDS (default 60) seconds, while the stand-in WeChat fails
# about one request in ten (uploads, shippings and verifies alike) and the
# worker is killed with SIGKILL once (the cluster crash-restarts; the writers
# reconnect).  upload_shopping_info() calls go on for a few seconds after the
# other writers stop.  When the queue drains (orders, shipping information,
# verifies), every order left must be uploaded, with the content it has now
# as the last body WeChat accepted; every order's shipping information must
# be uploaded with its current shipment as the last shipping body WeChat
# accepted, none of them sent before its order's upload was accepted; and
# every accepted upload must be verified.
#
# Shipping information: a share of the inserts store a shipment in the same
# transaction as the order; the "ship" group stores one later, in its own
# transaction, for orders without any (plain SQL or import_shipping()), and
# changes the tracking_no of orders that have one; deletes of orders take
# theirs with them (ON DELETE CASCADE).  shopping_upload.verify_delay is 1 s,
# so verifies run during the soak.
#
# WeChat's order shipping management service: a trade driver (a Perl
# script, its own process) writes orders of wxtradeapp, an appid pinned in
# the service, under ids the pgbench writers never pick (negative), about
# one a second, their payments registered at the stand-in (1 in 10 found
# only at the second lookup: 10060001 first); shipments unified, split in
# two steps or split at once, some changed once the shipping is complete
# and accepted, some of those given reship() (once needs_reship), some of
# those changed again after the re-ship, some given reship() unchanged, some
# marked signed for (the receipt reminder).  get_order runs every 5 s
# (reconcile_interval); the stand-in fails one request in ten of the
# service's upload, get_order and receipt reminder too.  Checked at the end,
# each with its figures: no payment gets a third accepted upload (a split
# delivery's steps before completion aside); no re-ship reaches the stand-in
# without a reship() call; every shipment ends uploaded, needs_reship (only
# those changed after completion without reship()), or rejected with a reason
# (10060003 only for those changed after the re-ship), none left waiting; no
# state says uploaded unless the stand-in accepted an upload of that payment,
# and one uploaded at its version is the body the stand-in kept last; one
# request per payment in flight.
#
# Reported (diag), not checked: deadlocks and serialization failures the
# writers saw (the update script locks items, then their order; a delete
# locks the order, then its items by the cascade: the writers' own lock
# orders can deadlock, and pgbench retries), the same content accepted twice in a row for one order, stale
# shipping bodies, verify_result values, shipping bodies whose payer is not
# the order's current one.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use HTTP::Tiny;
use POSIX qw(WNOHANG);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use SuStub;

my $duration = $ENV{SOAK_SECONDS} // 60;
die "SOAK_SECONDS must be a whole number of seconds, at least 20\n"
  unless $duration =~ /^\d+$/ && $duration >= 20;
# workers of the database (shopping_upload.workers_per_database): t/015 runs
# this soak with 2
my $workers = $ENV{SOAK_WORKERS} // 1;
my $drain_limit = 120;    # seconds for the queue to drain once writers stop

my $UPLOAD = '/user-order/orders';
my $SHIP = '/user-order/orders/shippings';
my $VERIFY = '/user-order/shoppinginfo/verify';
my $TRADE = '/wxa/sec/order/upload_shipping_info';
my $TRADE_GET = '/wxa/sec/order/get_order';
my $TRADE_NOTIFY = '/wxa/sec/order/notify_confirm_receive';

# The writer groups: transactions per second (pgbench -R, whole group), clients.
my %group = (
	insert => { clients => 2, rate => 200 },
	update => { clients => 2, rate => 80 },
	delete => { clients => 1, rate => 10 },    # 1 in 20 of the inserts
	ship => { clients => 1, rate => 40 },      # shipping information: add, change
	upload => { clients => 1 },                # psql: upload_shopping_info()
	trade => { clients => 1 },                 # the trade driver (perl)
);
my $ship_share = 3;    # in 10 of the inserts store a shipment with the order
my $upload_pause = 0.04;    # seconds between two upload_shopping_info() calls
my $upload_tail = 3;    # seconds it goes on once the other writers are done

my $dir = PostgreSQL::Test::Utils::tempdir();
my $stub_log = "$dir/stub_requests.jsonl";
my $stub = SuStub->start(dir => $dir, log => $stub_log,
	accounts => 'wxtestappid:testsecret,wxtradeapp:tradesecret');

my $node = SuStub::node(conf => <<"EOC");
shopping_upload.api_base_url = '${\ $stub->url}'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret = 'testsecret'
shopping_upload.retry_base_delay = '50ms'
shopping_upload.retry_max_delay = '500ms'
shopping_upload.max_attempts = 1000
shopping_upload.timeout = '5s'
shopping_upload.lease = '10s'
shopping_upload.verify_delay = '1s'
shopping_upload.reconcile_interval = '5s'
shopping_upload.workers_per_database = $workers
restart_after_crash = on
max_connections = 40
log_statement = none
EOC

sub sql { return $node->safe_psql('postgres', $_[0]); }

# the trade driver's appid: its secret, and pinned in the service
sql("INSERT INTO shopping_upload.accounts (appid, secret) VALUES ('wxtradeapp', 'tradesecret');
	INSERT INTO shopping_upload.trade_apps (appid, pinned) VALUES ('wxtradeapp', true);");

# a query that may fail (the cluster restarting): its output, or undef
sub try_sql
{
	my ($query) = @_;
	my ($out, $err, $timed_out) = ('', '', 0);
	my $rc = $node->psql('postgres', $query, stdout => \$out, stderr => \$err,
		timeout => 30, timed_out => \$timed_out);
	return (defined $rc && $rc == 0 && !$timed_out) ? $out : undef;
}

# polls until $query answers $expected, at most $secs seconds
sub wait_until
{
	my ($query, $expected, $secs) = @_;
	my $until = time + $secs;
	while (time < $until)
	{
		my $out = try_sql($query);
		return 1 if defined $out && $out eq $expected;
		usleep(200_000);
	}
	return 0;
}

sub worker_pid
{
	my $pid = try_sql("SELECT min(pid) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'");
	return (defined $pid && $pid =~ /^\d+$/) ? $pid : undef;
}

# ---------------------------------------------------------------------
# The writers' scripts
# ---------------------------------------------------------------------

# soak_ship_*: the tracking numbers of the shipments stored with their order
# (SFI), later by plain SQL (SFL) or import_shipping() (SFJ), and of the
# changes (SFC); their last values count them (about: a retried transaction
# takes a number twice)
sql("CREATE SEQUENCE public.soak_txn; CREATE SEQUENCE public.soak_ver;
	CREATE SEQUENCE public.soak_ship_tx; CREATE SEQUENCE public.soak_ship_later;
	CREATE SEQUENCE public.soak_ship_import; CREATE SEQUENCE public.soak_ship_change;");

# an existing order: one of the newest 50, most likely in the worker's hands
# right now (mode 1), or any (otherwise); never one of the trade driver's
# (negative ids)
my $pick = <<'EOS';
\if :mode = 1
SELECT order_id AS target FROM shopping_upload.orders
 WHERE order_id >= (SELECT max(order_id) - :back FROM shopping_upload.orders)
 ORDER BY order_id LIMIT 1 \gset
\else
SELECT order_id AS target FROM shopping_upload.orders
 WHERE order_id >= (SELECT min(order_id) + (max(order_id) - min(order_id)) * :frac / 1000000
                      FROM shopping_upload.orders WHERE order_id > 0)
 ORDER BY order_id LIMIT 1 \gset
\endif
EOS

# one valid order (order_number_type 2, unique transaction_id), 1 sub-order,
# 2-3 items; $ship_share in 10 with their shipping information (unified
# delivery, one shipment), in the same transaction
append_to_file("$dir/insert.sql", <<"EOS");
\\set nitems random(2, 3)
\\set ship random(1, 10)
BEGIN;
INSERT INTO shopping_upload.orders (order_number_type, transaction_id, openid, logistics_type)
  VALUES (2, '42' || lpad(nextval('public.soak_txn')::text, 18, '0'), 'o-soak-' || :client_id, 1)
  RETURNING order_id \\gset
INSERT INTO shopping_upload.sub_orders (order_id, sub_order_no, merchant_order_no, link_type, link_url)
  VALUES (:order_id, 0, 'm-' || :order_id, 'URL', 'https://shop.example.com/o/' || :order_id);
INSERT INTO shopping_upload.items (order_id, sub_order_no, item_no, merchant_item_id, name,
    unit_price, quantity, image_url, link_type, link_url)
  SELECT :order_id, 0, g, 'sku-' || g, 'Tea ' || g, 100 * (g + 1), 1,
         ARRAY['https://img.example.com/' || g || '.png'], 'URL', 'https://shop.example.com/i/' || g
    FROM generate_series(0, :nitems - 1) g;
\\if :ship <= $ship_share
INSERT INTO shopping_upload.shippings (order_id, delivery_mode) VALUES (:order_id, 1);
INSERT INTO shopping_upload.shipments (order_id, shipment_no, tracking_no, express_company)
  VALUES (:order_id, 0, 'SFI' || nextval('public.soak_ship_tx'), 'SF');
\\endif
COMMIT;
EOS

# every update changes the content (a quantity grows; names and openids
# carry a counter), so no two versions of an order have the same content
append_to_file("$dir/update.sql", <<"EOS");
\\set mode random(1, 2)
\\set back random(0, 50)
\\set frac random(0, 999999)
\\set what random(1, 10)
$pick
BEGIN;
UPDATE shopping_upload.items SET quantity = quantity + 1 WHERE order_id = :target AND item_no = 0;
\\if :what <= 3
UPDATE shopping_upload.items SET name = 'Tea ' || item_no || ' v' || nextval('public.soak_ver')
 WHERE order_id = :target;
\\endif
\\if :what = 4 or :what = 5
UPDATE shopping_upload.shipments SET tracking_no = 'SFC' || nextval('public.soak_ship_change')
 WHERE order_id = :target AND shipment_no = 0;
\\endif
\\if :what >= 8
UPDATE shopping_upload.orders SET openid = 'o-soak-v' || nextval('public.soak_ver'), updated_at = now()
 WHERE order_id = :target;
\\endif
COMMIT;
EOS

append_to_file("$dir/delete.sql", <<"EOS");
\\set mode random(1, 4)
\\set back random(0, 50)
\\set frac random(0, 999999)
$pick
DELETE FROM shopping_upload.orders WHERE order_id = :target;
EOS

# shipping information, on its own: 4 in 10 store it, in their own
# transaction, for an order that has none (the order locked against deletes
# meanwhile; half by plain SQL, half by import_shipping()); 6 in 10 change
# the tracking_no of an order that has one.  Half of either among the newest
# orders (most likely not uploaded yet, or in the worker's hands), half any.
my $from = sub {
	my ($table) = @_;
	return "CASE WHEN :mode = 1 THEN (SELECT max(order_id) - :back FROM shopping_upload.$table)
	  ELSE (SELECT min(order_id) + (max(order_id) - min(order_id)) * :frac / 1000000
	          FROM shopping_upload.$table WHERE order_id > 0) END";
};
append_to_file("$dir/ship.sql", <<"EOS");
\\set mode random(1, 2)
\\set back random(0, 50)
\\set frac random(0, 999999)
\\set what random(1, 10)
\\if :what <= 4
BEGIN;
SELECT coalesce((SELECT o.order_id FROM shopping_upload.orders o
   WHERE o.order_id >= ${\ $from->('orders')}
     AND NOT EXISTS (SELECT FROM shopping_upload.shippings h WHERE h.order_id = o.order_id)
   ORDER BY o.order_id LIMIT 1 FOR KEY SHARE OF o), 0) AS target \\gset
\\if :what <= 2
WITH h AS (INSERT INTO shopping_upload.shippings (order_id, delivery_mode)
             SELECT order_id, 1 FROM shopping_upload.orders WHERE order_id = :target
             ON CONFLICT (order_id) DO NOTHING RETURNING order_id)
INSERT INTO shopping_upload.shipments (order_id, shipment_no, tracking_no, express_company)
  SELECT order_id, 0, 'SFL' || nextval('public.soak_ship_later'), 'SF' FROM h;
\\else
SELECT count(shopping_upload.import_shipping(jsonb_build_object(
    'order_key', jsonb_build_object('order_number_type', 2, 'transaction_id', o.transaction_id),
    'payer', jsonb_build_object('openid', o.openid),
    'upload_time', '2026-01-01T00:00:00+08:00',
    'delivery_mode', 1,
    'shipping_list', jsonb_build_array(jsonb_build_object(
      'tracking_no', 'SFJ' || nextval('public.soak_ship_import'), 'express_company', 'YTO',
      'contact', jsonb_build_object('receiver_contact',
        '189****' || lpad((o.order_id % 10000)::text, 4, '0')))))))
  FROM shopping_upload.orders o WHERE o.order_id = :target;
\\endif
COMMIT;
\\else
UPDATE shopping_upload.shipments SET tracking_no = 'SFC' || nextval('public.soak_ship_change')
 WHERE shipment_no = 0 AND order_id = (SELECT order_id FROM shopping_upload.shipments
   WHERE order_id >= ${\ $from->('shipments')} ORDER BY order_id LIMIT 1);
\\endif
EOS

my @conn = ('-h', $node->host, '-p', $node->port);

append_to_file("$dir/trade.pl", <<'EOS');
# The trade driver of t/004_soak.pl: orders of wxtradeapp (an appid pinned
# in the order shipping management service), ids -first, -(first+1), ...
# (the pgbench writers pick positive ids only), each with its shipment
# and its payment registered at the stand-in, one at each look (at most
# one every 0.3 to 0.7 s) until the deadline, then driven through a plan:
# unified, split in two steps or split at once; changed after completion
# (tracking_no, only once the state shows the shipping complete and
# accepted at its version), then reship() (once it shows needs_reship),
# then changed again after the re-ship (once it shows reship_used); or
# reship() of an unchanged complete shipping; a parcel signed for once
# complete.  Each step is
# logged once it is known to have committed (its psql answered, or a later
# look finds it done): "plan N k=v ...", "created N", "step2 N",
# "received N", "changed N", "reship_try N" (before each call),
# "reship_ok N", "changed2 N".  Every failure (the cluster crash-restarts
# meanwhile) is tried again on a later look.
use strict;
use warnings;
use HTTP::Tiny;
use JSON::PP;
use Time::HiRes qw(time usleep);

my ($host, $port, $stub, $deadline, $log, $first, $seed) = @ARGV;
srand($seed);
$ENV{PGCONNECT_TIMEOUT} = 5;
my $json = JSON::PP->new->canonical;
my $http = HTTP::Tiny->new(timeout => 10);
open my $L, '>>', $log or die "$log: $!";
$L->autoflush(1);
sub note_ev { print $L join(' ', @_), "\n"; }

# one psql session: (succeeded, its output)
sub psql
{
	my ($sql) = @_;
	open(my $fh, '-|', 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', $host, '-p', $port,
		'-d', 'postgres', '-c', $sql) or return (0, '');
	local $/;
	my $out = <$fh> // '';
	close $fh;
	chomp $out;
	return ($? == 0, $out);
}

sub txn { return sprintf('43%018d', $_[0]); }

sub register
{
	my ($n, $late) = @_;
	my $r = $http->post("$stub/__stub/trade/payments", {
		headers => { 'Content-Type' => 'application/json' },
		content => $json->encode({ transaction_id => txn($n), openid => "o-trade-$n", appid => 'wxtradeapp',
			$late ? (found_after_lookups => 1) : () }) });
	return $r->{success};
}

sub parcel_sql
{
	my ($id, $no, $tracking, $company, $item) = @_;
	return ("INSERT INTO shopping_upload.shipments (order_id, shipment_no, tracking_no, express_company)
		VALUES ($id, $no, '$tracking', '$company')",
		defined $item ? ("INSERT INTO shopping_upload.shipment_items (order_id, shipment_no, item_no, merchant_item_id)
		VALUES ($id, $no, 0, 'sku-$item')") : ());
}

sub create_sql
{
	my ($n, $p) = @_;
	my $id = -$n;
	my @s = ("INSERT INTO shopping_upload.orders (order_id, appid, order_number_type, transaction_id, openid, logistics_type)
		VALUES ($id, 'wxtradeapp', 2, '" . txn($n) . "', 'o-trade-$n', 1)",
		"INSERT INTO shopping_upload.sub_orders (order_id, sub_order_no, merchant_order_no, link_type, link_url)
		VALUES ($id, 0, 'm-t$n', 'URL', 'https://shop.example.com/o/t$n')",
		"INSERT INTO shopping_upload.items (order_id, sub_order_no, item_no, merchant_item_id, name,
			unit_price, quantity, image_url, link_type, link_url)
		SELECT $id, 0, g, 'sku-' || g, 'Tea ' || g, 100 * (g + 1), 1,
			ARRAY['https://img.example.com/' || g || '.png'], 'URL', 'https://shop.example.com/i/' || g
		FROM generate_series(0, 1) g");
	if ($p->{kind} eq 'unified')
	{
		push @s, "INSERT INTO shopping_upload.shippings (order_id, delivery_mode, logistics_type) VALUES ($id, 1, 1)",
		  parcel_sql($id, 0, "YTT$n-a", 'YTO');
	}
	else
	{
		my $all = $p->{kind} eq 'split' ? 'true' : 'false';
		push @s, "INSERT INTO shopping_upload.shippings (order_id, delivery_mode, logistics_type, is_all_delivered)
			VALUES ($id, 2, 1, $all)", parcel_sql($id, 0, "YTT$n-a", 'YTO', 0);
		push @s, parcel_sql($id, 1, "ZTT$n-b", 'ZTO', 1) if $p->{kind} eq 'split';
	}
	return join(";\n", 'BEGIN', @s, 'COMMIT') . ';';
}

sub plan
{
	my %p;
	my $r = rand();
	$p{kind} = $r < 0.45 ? 'unified' : $r < 0.8 ? 'steps' : 'split';
	$p{late} = rand() < 0.1 ? 1 : 0;
	my $c = rand();
	$p{change} = $c < 0.5 ? 1 : 0;
	$p{reship} = $p{change} && rand() < 0.6 ? 1 : 0;
	$p{change2} = $p{reship} && rand() < 0.4 ? 1 : 0;
	$p{nochange} = !$p{change} && $c < 0.6 ? 1 : 0;
	$p{receipt} = $p{kind} eq 'unified' && rand() < 0.3 ? 1 : 0;
	return \%p;
}

my (%o, @active);
my $n = $first - 1;
my $next_create = time;
while (time < $deadline)
{
	if (time >= $next_create)
	{
		$n++;
		my $p = plan();
		$o{$n} = { plan => $p };
		note_ev('plan', $n, map { "$_=$p->{$_}" } sort keys %$p);
		push @active, $n;
		$next_create = time + 0.3 + rand(0.4);
	}
	my @ids = map { -$_ } @active;
	my ($ok, $out) = @ids ? psql("SELECT o.order_id, coalesce(t.state, '-'),
			coalesce(t.version = t.uploaded_version, false), coalesce(t.finish_count, 0),
			coalesce(t.reship_used, false), coalesce(t.reship_allowed, false),
			coalesce(m.tracking_no, '-'), coalesce(h.is_all_delivered, false), h.received_at IS NOT NULL
		  FROM shopping_upload.orders o
		  LEFT JOIN shopping_upload.trade_state t ON t.order_id = o.order_id
		  LEFT JOIN shopping_upload.shippings h ON h.order_id = o.order_id
		  LEFT JOIN shopping_upload.shipments m ON m.order_id = o.order_id AND m.shipment_no = 0
		 WHERE o.order_id IN (" . join(',', @ids) . ')') : (1, '');
	if (!$ok)
	{
		usleep(300_000);
		next;
	}
	my %row = map { my @f = split /\|/; ($f[0] => \@f) } grep { /\S/ } split /\n/, $out;
	my $actions = 0;
	my @still;
	for my $i (0 .. $#active)
	{
		my $k = $active[$i];
		if ($actions >= 4)
		{
			push @still, @active[ $i .. $#active ];    # at most 4 steps a look
			last;
		}
		my $t = $o{$k};
		my $p = $t->{plan};
		my $r = $row{ -$k };
		push @still, $k;
		if (!$t->{created})
		{
			if ($r)
			{
				$t->{created} = 1;
				note_ev('created', $k);
				next;
			}
			$t->{registered} ||= register($k, $p->{late});
			next unless $t->{registered};
			$actions++;
			my ($done) = psql(create_sql($k, $p));
			if ($done) { $t->{created} = 1; note_ev('created', $k); }
			next;
		}
		next unless $r;
		my (undef, $state, $current, $finish, $rused, $rallowed, $track, $all, $recv) = @$r;
		my $accepted = $state eq 'uploaded' && $current eq 't';
		my $complete = $accepted && $finish >= 1;
		my $id = -$k;
		my $step = sub {
			my ($flag, $sql) = @_;
			$actions++;
			my ($done) = psql($sql);
			if ($done) { $t->{$flag} = 1; note_ev($flag, $k); }
		};
		if ($p->{kind} eq 'steps' && !$t->{step2})
		{
			if ($all eq 't') { $t->{step2} = 1; note_ev('step2', $k); }
			elsif ($accepted)
			{
				$step->('step2', join(";\n", 'BEGIN', parcel_sql($id, 1, "ZTT$k-b", 'ZTO', 1),
					"UPDATE shopping_upload.shippings SET is_all_delivered = true WHERE order_id = $id", 'COMMIT') . ';');
			}
			next;
		}
		if ($p->{receipt} && !$t->{received})
		{
			if ($recv eq 't') { $t->{received} = 1; note_ev('received', $k); }
			elsif ($complete)
			{
				$step->('received', "UPDATE shopping_upload.shippings SET received_at = clock_timestamp() WHERE order_id = $id");
			}
			next;
		}
		if ($p->{nochange} && !$t->{reship_ok})
		{
			if ($complete)
			{
				note_ev('reship_try', $k);
				$step->('reship_ok', "SELECT shopping_upload.reship($id)");
			}
			next;
		}
		if ($p->{change} && !$t->{changed})
		{
			if ($track eq "YTT$k-c1") { $t->{changed} = 1; note_ev('changed', $k); }
			elsif ($complete)
			{
				$step->('changed', "UPDATE shopping_upload.shipments SET tracking_no = 'YTT$k-c1'
					WHERE order_id = $id AND shipment_no = 0");
			}
			next;
		}
		if ($p->{reship} && !$t->{reship_ok})
		{
			if ($rused eq 't' || $rallowed eq 't') { $t->{reship_ok} = 1; note_ev('reship_ok', $k); }
			elsif ($state eq 'needs_reship')
			{
				note_ev('reship_try', $k);
				$step->('reship_ok', "SELECT shopping_upload.reship($id)");
			}
			next;
		}
		if ($p->{change2} && !$t->{changed2})
		{
			if ($track eq "YTT$k-c2") { $t->{changed2} = 1; note_ev('changed2', $k); }
			elsif ($rused eq 't' && $accepted)
			{
				$step->('changed2', "UPDATE shopping_upload.shipments SET tracking_no = 'YTT$k-c2'
					WHERE order_id = $id AND shipment_no = 0");
			}
			next;
		}
		pop @still;    # its plan is done
	}
	@active = @still;
	usleep(100_000);
}
note_ev('end', $n);
EOS

# upload_shopping_info() on random orders (half of them among the newest
# 100), paced; psql goes on after an error and prints its SQLSTATE
sub upload_script
{
	my ($path, $calls) = @_;
	my $s = "\\set VERBOSITY verbose\n";
	for (1 .. $calls)
	{
		my $from = rand() < 0.5
		  ? sprintf('(SELECT max(order_id) - %d FROM shopping_upload.orders)', int(rand(100)))
		  : sprintf('(SELECT min(order_id) + ((max(order_id) - min(order_id)) * %.6f)::bigint'
			  . ' FROM shopping_upload.orders WHERE order_id > 0)', rand());
		$s .= "SELECT 'call ' || coalesce(errcode::text, '?') FROM shopping_upload.upload_shopping_info("
		  . "(SELECT order_id FROM shopping_upload.orders WHERE order_id >= $from ORDER BY order_id LIMIT 1));\n"
		  . "SELECT pg_sleep($upload_pause);\n";
	}
	open my $fh, '>', $path or die "$path: $!";
	print $fh $s;
	close $fh;
}

# ---------------------------------------------------------------------
# Writer processes: each group runs until the deadline, relaunched when
# it ends early (a crash-restart ends every connection)
# ---------------------------------------------------------------------

my %kids;    # pid => run record
my @runs;    # every run: group, pid, out, err, status

sub spawn
{
	my ($name, @cmd) = @_;
	my $n = scalar(grep { $_->{group} eq $name } @runs) + 1;
	my $run = { group => $name, n => $n, out => "$dir/$name.$n.out",
		err => "$dir/$name.$n.err", started => time };
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>', $run->{out}) or POSIX::_exit(127);
		open(STDERR, '>', $run->{err}) or POSIX::_exit(127);
		exec { $cmd[0] } @cmd or POSIX::_exit(127);
	}
	$run->{pid} = $pid;
	$kids{$pid} = $run;
	push @runs, $run;
	return $run;
}

# reaps the writers that ended
sub reap
{
	for my $pid (keys %kids)
	{
		my $r = waitpid($pid, WNOHANG);
		next unless $r == $pid || $r == -1;
		$kids{$pid}->{status} = $r == -1 ? -1 : $?;
		$kids{$pid}->{ended} = time;
		delete $kids{$pid};
	}
}

sub running { my ($name) = @_; return grep { $_->{group} eq $name } values %kids; }

# waits at most $secs seconds for every writer to end; how many still run
sub wait_writers
{
	my ($secs) = @_;
	my $until = time + $secs;
	while (%kids && time < $until)
	{
		reap();
		usleep(50_000);
	}
	return scalar(keys %kids);
}

# TERM, then KILL after $grace seconds, every writer still running
sub stop_writers
{
	my ($grace) = @_;
	kill 'TERM', keys %kids;
	return unless wait_writers($grace);
	kill 'KILL', keys %kids;
	wait_writers(10);
}

END
{
	local $?;
	stop_writers(3) if %kids;
}

sub launch
{
	my ($name, $secs) = @_;
	my $g = $group{$name};
	if ($name eq 'trade')
	{
		# its orders from -(100000 * run + 1) down: a relaunched driver
		# starts new ones
		my $nrun = scalar(grep { $_->{group} eq 'trade' } @runs);
		return spawn($name, 'perl', "$dir/trade.pl", $node->host, $node->port, $stub->url,
			time + $secs, "$dir/trade.log", 100000 * $nrun + 1, 4 + $nrun);
	}
	if ($name eq 'upload')
	{
		my $path = "$dir/upload." . (scalar(@runs) + 1) . '.sql';
		upload_script($path, int(($secs + $upload_tail + 15) / $upload_pause));
		return spawn($name, 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=0',
			@conn, '-d', 'postgres', '-f', $path);
	}
	return spawn($name, 'pgbench', '-n', @conn, '-c', $g->{clients}, '-j', 1,
		'-T', $secs, '-R', $g->{rate}, '--max-tries=10', '--failures-detailed',
		'-f', "$dir/$name.sql", 'postgres');
}

# ---------------------------------------------------------------------
# Before: the scripts write valid orders, and the worker uploads them
# ---------------------------------------------------------------------

ok(wait_until("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'", $workers, 30),
	"the worker runs ($workers of them)");
my $seed = spawn('seed', 'pgbench', '-n', @conn, '-c', 1, '-t', 200, '-f', "$dir/insert.sql",
	'postgres');
wait_writers(60);
stop_writers(3);
is($seed->{status}, 0, 'the insert script writes 200 orders')
  or diag(slurp_file($seed->{err}));
is(sql("SELECT count(*) FROM shopping_upload.orders o, shopping_upload.validate_order(o.order_id)"),
	'0', 'they are valid (validate_order() finds nothing)');
ok(wait_until("SELECT count(*) FROM shopping_upload.order_status WHERE state = 'uploaded'", '200', 30),
	'the worker uploads them')
  or diag(sql("SELECT coalesce(state, 'no state') || ': ' || count(*) FROM shopping_upload.order_status GROUP BY state"));
my $seed_shipped = sql("SELECT count(*) FROM shopping_upload.shippings");
ok($seed_shipped > 0 && wait_until("SELECT count(*) FROM shopping_upload.order_status WHERE shipping_state = 'uploaded'",
	$seed_shipped, 30), "the shipping information of $seed_shipped of them is uploaded")
  or diag(sql("SELECT coalesce(shipping_state, 'no state') || ': ' || count(*) FROM shopping_upload.order_status
	WHERE order_id IN (SELECT order_id FROM shopping_upload.shippings) GROUP BY shipping_state"));
ok(wait_until("SELECT count(*) FROM shopping_upload.order_status WHERE verified_at IS NOT NULL", '200', 30),
	'and every upload is verified')
  or diag(sql("SELECT count(*) FILTER (WHERE verified_at IS NOT NULL) || ' verified, '
	|| count(*) FILTER (WHERE next_verify_at IS NOT NULL) || ' planned' FROM shopping_upload.order_status"));

# ---------------------------------------------------------------------
# The soak
# ---------------------------------------------------------------------

# about one request in ten fails, transiently, for the whole run: uploads,
# shipping information and verifies alike, and the service's upload,
# get_order and receipt reminder
for my $path ($UPLOAD, $SHIP, $VERIFY, $TRADE, $TRADE_GET, $TRADE_NOTIFY)
{
	$stub->fault(kind => 'errcode:-1', fraction => 0.05, count => 0, path => $path);
	$stub->fault(kind => 'http500', fraction => 0.05, count => 0, path => $path);
}

my $logpos = -s $node->logfile;
my $t0 = time;
my $deadline = $t0 + $duration;
my $kill_at = $t0 + $duration * 0.4;
my ($killed_pid, $killed_at, $back_pid, $back_at);
my %next_launch = map { $_ => 0 } keys %group;
my $next_probe = 0;
my $next_report = $t0 + 15;

diag(sprintf('soak: %d s, writers: insert %d/s (%d in 10 with a shipment), update %d/s, delete %d/s, '
	  . 'shipping information %d/s, upload_shopping_info %.0f/s',
	$duration, $group{insert}{rate}, $ship_share, $group{update}{rate}, $group{delete}{rate},
	$group{ship}{rate}, 1 / $upload_pause));
while (time < $deadline)
{
	reap();
	for my $name (sort keys %group)
	{
		next if running($name) || time < $next_launch{$name};
		my $secs = int($deadline - time);
		next if $secs < 2;
		launch($name, $secs);
		$next_launch{$name} = time + 0.5;    # if it fails at once: the cluster restarts
	}

	if (!$killed_pid && time >= $kill_at && defined(my $pid = worker_pid()))
	{
		kill 'KILL', $pid;
		($killed_pid, $killed_at) = ($pid, time);
		diag(sprintf('soak: %.1f s: kill -9 of the worker (pid %d)', $killed_at - $t0, $pid));
	}
	if ($killed_pid && !$back_pid && time >= $next_probe)
	{
		my $pid = worker_pid();
		if (defined $pid && $pid != $killed_pid)
		{
			($back_pid, $back_at) = ($pid, time);
			diag(sprintf('soak: %.1f s: a new worker runs (pid %d), %.1f s after the kill',
				$back_at - $t0, $pid, $back_at - $killed_at));
		}
		$next_probe = time + 0.5;
	}
	if (time >= $next_report)
	{
		my $s = try_sql("SELECT (SELECT count(*) FROM shopping_upload.orders) || ' orders; queue: '
			|| pending || ' pending, ' || uploading || ' uploading, ' || retrying || ' retrying, '
			|| uploaded || ' uploaded; verified ' || verified || ', awaiting ' || awaiting_verification
			|| '; shipping information: ' || shippings_uploaded || ' uploaded, '
			|| shippings_waiting_for_order || ' waiting for the order, ' || shippings_pending
			|| ' pending, ' || shippings_failed || ' failed; the service: ' || trade_shipped || ' uploaded, '
			|| trade_pending || ' pending, ' || trade_waiting_for_payment || ' waiting for the payment, '
			|| trade_needs_reship || ' needs_reship, ' || trade_failed || ' failed' FROM shopping_upload.stats");
		diag(sprintf('soak: %.0f s: %s; %d requests at the stand-in', time - $t0,
			$s // '(database unavailable)', $stub->stats->{requests}));
		$next_report = time + 15;
	}
	usleep(100_000);
}

# pgbench ends at its -T.  upload_shopping_info() goes on alone for a few
# seconds more: calls while nothing else is written, when only its own
# timers wake the worker (an order a call leaves due must still be sent)
my $until = time + 15;
while (grep({ $_->{group} ne 'upload' } values %kids) && time < $until)
{
	reap();
	usleep(50_000);
}
my $hung = grep { $_->{group} ne 'upload' } values %kids;
my $tail = time + $upload_tail;
while (time < $tail) { reap(); usleep(50_000); }
kill 'TERM', map { $_->{pid} } running('upload');
stop_writers(3);
for my $run (grep { exists $group{ $_->{group} } } @runs)
{
	my $st = $run->{status};
	note(sprintf('writer run: %s %d, %.1f s to %.1f s, %s', $run->{group}, $run->{n},
		$run->{started} - $t0, ($run->{ended} // time) - $t0,
		!defined $st || $st < 0 ? 'exit status unknown'
		: $st & 127 ? 'signal ' . ($st & 127)
		: 'exit status ' . ($st >> 8)));
}
is($hung, 0, 'every pgbench writer ended by the deadline');
ok(wait_until("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
	'0', 30), 'no writer session is left');

# ---------------------------------------------------------------------
# Drain: no faults; wait until nothing is waiting to be sent: no order,
# no shipping information (waiting for its order included), no verify
# ---------------------------------------------------------------------

$stub->clear_faults;
my $drain_start = time;
my ($drained, $quiet) = (0, 0);
while (time < $drain_start + $drain_limit)
{
	my $n = try_sql("SELECT (SELECT count(*) FROM shopping_upload.order_state
		WHERE state IN ('pending', 'uploading', 'retrying', 'held') OR verify_due_at IS NOT NULL)
		+ (SELECT count(*) FROM shopping_upload.shipping_state
		WHERE state IN ('pending', 'waiting_for_order', 'uploading', 'retrying', 'held'))
		+ (SELECT count(*) FROM shopping_upload.trade_state
		WHERE state IN ('pending', 'waiting_for_payment', 'uploading', 'retrying', 'held')
		   OR confirm_due_at IS NOT NULL)");
	$quiet = (defined $n && $n eq '0') ? $quiet + 1 : 0;
	if ($quiet >= 2) { $drained = 1; last; }
	usleep(500_000);
}
my $drain_secs = time - $drain_start;
if ($killed_pid && !$back_pid && defined(my $pid = worker_pid()))
{
	($back_pid, $back_at) = ($pid, time) if $pid != $killed_pid;
}
ok($drained, sprintf('the queue drains: orders, shipping information, verifies, the service\'s uploads and receipt reminders (%.1f s)', $drain_secs))
  or diag(sql("SELECT 'order ' || state || ': ' || count(*) FROM shopping_upload.order_state GROUP BY state
	UNION ALL SELECT 'verify planned: ' || count(*) || ', due since ' || coalesce(round(extract(epoch FROM
		now() - min(verify_due_at))::numeric, 1)::text, '-') || ' s'
	  FROM shopping_upload.order_state WHERE verify_due_at IS NOT NULL
	UNION ALL SELECT 'shipping ' || state || ': ' || count(*) FROM shopping_upload.shipping_state GROUP BY state
	UNION ALL SELECT 'trade shipping ' || state || ': ' || count(*) FROM shopping_upload.trade_state GROUP BY state
	UNION ALL SELECT 'receipt reminders planned: ' || count(*) FROM shopping_upload.trade_state WHERE confirm_due_at IS NOT NULL"));

# ---------------------------------------------------------------------
# What the writers did
# ---------------------------------------------------------------------

my %w = map { $_ => { runs => 0, tx => 0, failed => 0, serialization => 0, deadlock => 0,
	retries => 0, aborted => 0 } } keys %group;
my (%upload_calls, %upload_errors, %writer_errors);
for my $run (grep { exists $group{ $_->{group} } } @runs)
{
	my $c = $w{ $run->{group} };
	my $out = -e $run->{out} ? slurp_file($run->{out}) : '';
	my $err = -e $run->{err} ? slurp_file($run->{err}) : '';
	$c->{runs}++;
	if ($run->{group} eq 'upload')
	{
		$upload_calls{$1}++ while $out =~ /^call (\S+)$/mg;
		while ($err =~ /ERROR:\s+([0-9A-Z]{5}): (.*)$/mg)
		{
			my ($code, $msg) = ($1, $2);
			$msg =~ s/\d+/N/g;
			$upload_errors{"$code $msg"}++;
		}
		next;
	}
	$c->{tx} += $1 if $out =~ /number of transactions actually processed: (\d+)/;
	$c->{failed} += $1 if $out =~ /number of failed transactions: (\d+)/;
	$c->{serialization} += $1 if $out =~ /number of serialization failures: (\d+)/;
	$c->{deadlock} += $1 if $out =~ /number of deadlock failures: (\d+)/;
	$c->{retries} += $1 if $out =~ /total number of retries: (\d+)/;
	for my $line (grep { /aborted|error/i } split /\n/, $err)
	{
		$c->{aborted}++ if $line =~ /client \d+ aborted/;
		next if $line =~ /connection|recovery mode|shutting down|not yet accepting|Run was aborted|perhaps the backend died|terminating|server closed/i;
		(my $norm = $line) =~ s/\d+/N/g;
		$writer_errors{"$run->{group}: $norm"}++;
	}
}
my $calls = 0;
$calls += $_ for values %upload_calls;
my $call_errors = 0;
$call_errors += $_ for values %upload_errors;

my $log = slurp_file($node->logfile, $logpos);
my $log_deadlocks = () = $log =~ /ERROR:\s+deadlock detected/g;
my $log_serialization = () = $log =~ /ERROR:\s+could not serialize access/g;
my %log_errors;
while ($log =~ /\b(ERROR|WARNING|FATAL|PANIC):\s+(.*)$/mg)
{
	my ($level, $msg) = ($1, $2);
	$msg =~ s/\d+/N/g;
	$log_errors{"$level: $msg"}++;
}
my $crashed = $log =~ /terminating any other active server processes/;
my $worker_exits = () = $log =~ /background worker "shopping_upload worker[^"]*" \(PID \d+\) (?:exited|was terminated)/g;

# ---------------------------------------------------------------------
# What the stand-in accepted (its log, one record a line), against the orders
# ---------------------------------------------------------------------

{
	# complete lines only: a request may be being recorded right now
	open my $in, '<', $stub_log or die "$stub_log: $!";
	open my $out, '>', "$dir/requests.jsonl" or die "$dir/requests.jsonl: $!";
	while (my $line = <$in>)
	{
		last unless $line =~ /\n\z/;
		print $out $line;
	}
	close $in;
	close $out or die "$dir/requests.jsonl: $!";
}
sql("CREATE TABLE public.soak_requests (rec jsonb);
	COPY public.soak_requests FROM '$dir/requests.jsonl' WITH (FORMAT csv, DELIMITER E'\\x1f', QUOTE E'\\x1e');
	CREATE TABLE public.soak_sent AS
	SELECT seq, body->'order_key' AS okey, body - 'upload_time' AS content, body->>'upload_time' AS upload_time,
	       digest
	  FROM (SELECT (rec->>'seq')::bigint AS seq, (rec->>'body')::jsonb AS body,
	               sha256(convert_to(rec->>'body', 'UTF8')) AS digest
	          FROM public.soak_requests
	         WHERE rec->>'path' = '/user-order/orders' AND rec->>'errcode' = '0') r;
	CREATE TABLE public.soak_final AS
	SELECT o.order_id, p->'order_key' AS okey, p - 'upload_time' AS content
	  FROM shopping_upload.orders o, shopping_upload.build_payload(o.order_id) p;
	CREATE TABLE public.soak_last AS
	SELECT DISTINCT ON (okey) okey, seq, content FROM public.soak_sent ORDER BY okey, seq DESC;
	ANALYZE public.soak_sent, public.soak_final, public.soak_last;");

# One request per order in flight, an upload or its shipping information,
# whoever sends it (the workers, upload_shopping_info()): no such request for
# an order reaches the stand-in before the answer to the one before it was
# ready.  A request the stand-in failed on purpose is left out as the
# earlier one (a dropped connection or a delay past the timeout ends it for
# the sender before the stand-in is done).  A verify may overlap them (its
# claim does not wait for an upload in flight): counted, reported.
sub overlaps
{
	my (@paths) = @_;
	my $in = join(', ', map { "'$_'" } @paths);
	return split /\|/, sql(
		"WITH r AS (
		   SELECT (rec->>'body')::jsonb->'order_key' AS okey, rec->>'path' AS path,
		          (rec->>'time')::float8 AS t, (rec->>'done')::float8 AS done, rec->>'fault' AS fault
		     FROM public.soak_requests
		    WHERE rec->>'path' IN ($in) AND left(rec->>'body', 1) = '{'),
		 w AS (
		   SELECT okey, path, t,
		          max(done) FILTER (WHERE fault IS NULL) OVER (PARTITION BY okey ORDER BY t
		            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before_done,
		          lag(path) OVER (PARTITION BY okey ORDER BY t) AS before_path
		     FROM r WHERE okey IS NOT NULL)
		 SELECT count(*), coalesce(string_agg(DISTINCT before_path || ' then ' || path, ', '), 'none')
		   FROM w WHERE t < before_done");
}
my ($overlaps, $overlap_pairs) = overlaps($UPLOAD, $SHIP);
my ($overlaps_v, $overlap_pairs_v) = overlaps($UPLOAD, $SHIP, $VERIFY);
diag("soak: uploads and shipping information of one order in flight at once: $overlaps ($overlap_pairs); "
	  . "counting verifies: $overlaps_v ($overlap_pairs_v)");

my ($n_orders, $uploaded, $not_uploaded, $missing_state, $by_state) = split /\|/, sql(
	"SELECT count(*),
		count(*) FILTER (WHERE state = 'uploaded' AND uploaded_version = version),
		count(*) FILTER (WHERE NOT coalesce(state = 'uploaded' AND uploaded_version = version, false)),
		count(*) FILTER (WHERE state IS NULL),
		coalesce((SELECT string_agg(s || ' ' || n, ', ' ORDER BY s) FROM
			(SELECT CASE WHEN state IS NULL THEN 'no state'
			             WHEN state = 'uploaded' THEN 'uploaded, older version'
			             ELSE state END AS s, count(*) AS n
			   FROM shopping_upload.order_status
			  WHERE NOT coalesce(state = 'uploaded' AND uploaded_version = version, false)
			  GROUP BY 1) x), '')
	   FROM shopping_upload.order_status");
my $orphans = sql("SELECT count(*) FROM shopping_upload.order_state s
	WHERE NOT EXISTS (SELECT FROM shopping_upload.orders o WHERE o.order_id = s.order_id)");
my ($never_accepted, $stale) = split /\|/, sql(
	"SELECT count(*) FILTER (WHERE l.seq IS NULL),
		count(*) FILTER (WHERE l.seq IS NOT NULL AND l.content <> f.content)
	   FROM public.soak_final f LEFT JOIN public.soak_last l USING (okey)");
my $wrong_content = $never_accepted + $stale;

# the same content accepted twice in a row for one order; which path sent
# the repeat, from the audit (no audit row: lost in the crash).  An accepted
# row keeps the digest of the exact body sent, not the body (audit_request
# = failed, the default): the stand-in's body is found by its digest.
my ($accepted, $unaudited, $dups, $dups_worker, $dups_sql) = split /\|/, sql(
	"WITH s AS (SELECT s.seq, s.okey, s.content, a.via
	              FROM public.soak_sent s
	              LEFT JOIN (SELECT DISTINCT ON (request_sha256) request_sha256 AS digest, via
	                           FROM shopping_upload.audit
	                          WHERE errcode = 0 AND sent AND kind = 'order') a
	                USING (digest)),
	      d AS (SELECT via, content = lag(content) OVER (PARTITION BY okey ORDER BY seq) AS dup FROM s)
	 SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM s WHERE via IS NULL),
	        count(*) FILTER (WHERE dup), count(*) FILTER (WHERE dup AND via = 'worker'),
	        count(*) FILTER (WHERE dup AND via = 'sql')
	   FROM d");
my $invalid = sql("SELECT count(*) FROM (SELECT order_id FROM shopping_upload.orders
	ORDER BY random() LIMIT 200) o, shopping_upload.validate_order(o.order_id)");
my $stub_stats = $stub->stats;
my $faults = 0;
$faults += $_ for values %{ $stub_stats->{faults_applied} };

# ---------------------------------------------------------------------
# Shipping information and verifies: the stand-in's log and the orders it
# keeps (GET /__stub/orders, loaded as it is), against the tables
# ---------------------------------------------------------------------

{
	my $r = HTTP::Tiny->new(timeout => 120)->get($stub->url . '/__stub/orders');
	die "GET /__stub/orders: $r->{status} $r->{reason}" unless $r->{success};
	open my $out, '>:raw', "$dir/stub_orders.json" or die "$dir/stub_orders.json: $!";
	print $out $r->{content}, "\n";
	close $out or die "$dir/stub_orders.json: $!";
}
sql("CREATE TABLE public.soak_stub_raw (doc jsonb);
	COPY public.soak_stub_raw FROM '$dir/stub_orders.json' WITH (FORMAT csv, DELIMITER E'\\x1f', QUOTE E'\\x1e');
	CREATE TABLE public.soak_stub_orders AS
	SELECT e->'id'->>1 AS txn, e->'shipping' AS shipping, (e->>'shippings')::int AS shippings,
	       (e->>'shippings_stale')::int AS shippings_stale
	  FROM public.soak_stub_raw, jsonb_array_elements(doc) e WHERE e->'id'->>0 = 'tx';
	CREATE TABLE public.soak_ship_req AS
	SELECT (rec->>'seq')::bigint AS seq, (rec->>'body')::jsonb #>> '{order_key,transaction_id}' AS txn,
	       (rec->>'body')::jsonb AS body, (rec->>'errcode')::bigint AS errcode, rec->>'fault' AS fault,
	       rec #>> '{answer,json,errmsg}' AS errmsg
	  FROM public.soak_requests WHERE rec->>'path' = '$SHIP';
	CREATE TABLE public.soak_verify_req AS
	SELECT (rec->>'seq')::bigint AS seq, (rec->>'errcode')::bigint AS errcode, rec->>'fault' AS fault,
	       rec #>> '{answer,json,errmsg}' AS errmsg
	  FROM public.soak_requests WHERE rec->>'path' = '$VERIFY';
	CREATE TABLE public.soak_first_ok AS
	SELECT okey->>'transaction_id' AS txn, min(seq) AS seq FROM public.soak_sent GROUP BY 1;
	CREATE TABLE public.soak_ship_last AS
	SELECT DISTINCT ON (txn) txn, seq, body FROM public.soak_ship_req WHERE errcode = 0
	 ORDER BY txn, seq DESC;
	CREATE TABLE public.soak_ship_final AS
	SELECT h.order_id, o.transaction_id AS txn, m.tracking_no, p - 'upload_time' AS content,
	       st.state, st.version, st.uploaded_version, st.attempts, st.last_errcode, st.last_errmsg,
	       st.next_attempt_at
	  FROM shopping_upload.shippings h
	  JOIN shopping_upload.orders o USING (order_id)
	  LEFT JOIN shopping_upload.shipments m ON m.order_id = h.order_id AND m.shipment_no = 0
	  LEFT JOIN shopping_upload.shipping_state st ON st.order_id = h.order_id,
	  LATERAL shopping_upload.build_shipping_payload(h.order_id) p;
	ANALYZE public.soak_stub_orders, public.soak_ship_req, public.soak_first_ok,
	        public.soak_ship_last, public.soak_ship_final;");

# what the writers stored: the tracking-number sequences
my ($ship_with_order, $ship_later, $ship_import, $ship_changes) = split /\|/, sql(
	"SELECT " . join(', ', map { "(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.soak_ship_$_)" }
		qw(tx later import change)));

# every order with shipping information: its state, and the shipping body
# the stand-in keeps for it against the one the tables give now (its
# shipment, tracking_no included; the payer aside, see below)
my ($n_shipped, $ship_uploaded, $ship_not_uploaded, $ship_by_state, $ship_never, $ship_wrong,
	$ship_payer_old, $ship_log_differs) = split /\|/, sql(
	"SELECT count(*),
		count(*) FILTER (WHERE f.state = 'uploaded' AND f.uploaded_version = f.version),
		count(*) FILTER (WHERE NOT coalesce(f.state = 'uploaded' AND f.uploaded_version = f.version, false)),
		coalesce((SELECT string_agg(s || ' ' || n, ', ' ORDER BY s) FROM
			(SELECT CASE WHEN state IS NULL THEN 'no state'
			             WHEN state = 'uploaded' THEN 'uploaded, older version'
			             ELSE state END AS s, count(*) AS n
			   FROM public.soak_ship_final
			  WHERE NOT coalesce(state = 'uploaded' AND uploaded_version = version, false)
			  GROUP BY 1) x), ''),
		count(*) FILTER (WHERE k.shipping IS NULL OR k.shipping = 'null'),
		count(*) FILTER (WHERE k.shipping <> 'null'
			AND (k.shipping #>> '{shipping_list,0,tracking_no}' IS DISTINCT FROM f.tracking_no
			     OR k.shipping - 'upload_time' - 'payer' <> f.content - 'payer')),
		count(*) FILTER (WHERE k.shipping <> 'null' AND k.shipping->'payer' <> f.content->'payer'),
		count(*) FILTER (WHERE k.shipping <> 'null' AND l.body IS DISTINCT FROM k.shipping)
	   FROM public.soak_ship_final f
	   LEFT JOIN public.soak_stub_orders k USING (txn)
	   LEFT JOIN public.soak_ship_last l USING (txn)");
my $ship_orphans = sql("SELECT count(*) FROM shopping_upload.shipping_state s
	WHERE NOT EXISTS (SELECT FROM shopping_upload.shippings h WHERE h.order_id = s.order_id)");
my $ship_waiting = sql("SELECT count(*) FROM shopping_upload.shipping_state WHERE state = 'waiting_for_order'");
my $ship_deleted = sql("SELECT count(*) FROM public.soak_stub_orders k
	WHERE k.shipping <> 'null'
	  AND NOT EXISTS (SELECT FROM shopping_upload.orders o WHERE o.transaction_id = k.txn)");

# the requests: none sent before the stand-in accepted an upload of its
# order (whatever its answer: the worker must know the order accepted
# before it sends, so that upload arrived first); none refused but by an
# injected fault
my ($ship_requests, $ship_accepted, $ship_faulted, $ship_early, $ship_refused_not_uploaded,
	$ship_refused, $ship_stale) = split /\|/, sql(
	"SELECT count(*), count(*) FILTER (WHERE s.errcode = 0),
		count(*) FILTER (WHERE s.fault IS NOT NULL),
		count(*) FILTER (WHERE f.seq IS NULL OR f.seq > s.seq),
		count(*) FILTER (WHERE s.errmsg LIKE '%order not uploaded%'),
		count(*) FILTER (WHERE s.fault IS NULL AND s.errcode IS DISTINCT FROM 0),
		(SELECT coalesce(sum(shippings_stale), 0) FROM public.soak_stub_orders)
	   FROM public.soak_ship_req s LEFT JOIN public.soak_first_ok f USING (txn)");
my $ship_refused_by = sql("SELECT coalesce(string_agg(m || ' x' || n, ', ' ORDER BY n DESC, m), 'none') FROM
	(SELECT coalesce(errcode::text, 'no errcode') || ' '
	        || regexp_replace(coalesce(errmsg, ''), ' rid: .*\$', '') AS m, count(*) AS n
	   FROM public.soak_ship_req WHERE fault IS NULL AND errcode IS DISTINCT FROM 0
	  GROUP BY 1) x");

# verifies: every order whose upload was accepted is verified, at the
# version accepted last, unless verify_delay has not passed since
my ($n_upl, $verified, $unverified, $verify_not_due, $verify_older, $verify_results) = split /\|/, sql(
	"SELECT count(*), count(*) FILTER (WHERE verified_at IS NOT NULL),
		count(*) FILTER (WHERE verified_at IS NULL AND NOT coalesce(verify_due_at > now(), false)),
		count(*) FILTER (WHERE verify_due_at > now()),
		count(*) FILTER (WHERE verified_at IS NOT NULL AND verify_due_at IS NULL
			AND verified_version IS DISTINCT FROM uploaded_version),
		coalesce((SELECT string_agg(coalesce(r, 'none') || ' ' || n, ', ' ORDER BY r) FROM
			(SELECT verify_result AS r, count(*) AS n FROM shopping_upload.order_state
			  WHERE uploaded_version IS NOT NULL GROUP BY 1) x), '')
	   FROM shopping_upload.order_state WHERE uploaded_version IS NOT NULL");
my ($verify_requests, $verify_accepted, $verify_faulted, $verify_refused) = split /\|/, sql(
	"SELECT count(*), count(*) FILTER (WHERE errcode = 0), count(*) FILTER (WHERE fault IS NOT NULL),
		count(*) FILTER (WHERE fault IS NULL AND errcode IS DISTINCT FROM 0)
	   FROM public.soak_verify_req");
my ($audit_kinds, $audit_ship_ok, $audit_verify_ok) = split /\|/, sql(
	"SELECT string_agg(kind || ' ' || n || ' (' || ok || ' accepted)', ', ' ORDER BY kind),
		coalesce(sum(ok) FILTER (WHERE kind = 'shipping'), 0), coalesce(sum(ok) FILTER (WHERE kind = 'verify'), 0)
	   FROM (SELECT kind, count(*) AS n, count(*) FILTER (WHERE errcode = 0) AS ok
	           FROM shopping_upload.audit GROUP BY kind) a");
my $faults_by_path = sql("SELECT string_agg(p || ' ' || n, ', ' ORDER BY p) FROM
	(SELECT rec->>'path' AS p, count(*) AS n FROM public.soak_requests
	  WHERE rec->>'fault' IS NOT NULL GROUP BY 1) x");

# ---------------------------------------------------------------------
# The order shipping management service: what the trade driver did (its
# log), what the stand-in accepted (its record and GET
# /__stub/trade/payments), where each shipment stands
# ---------------------------------------------------------------------

my %T;
for my $line (-e "$dir/trade.log" ? split(/\n/, slurp_file("$dir/trade.log")) : ())
{
	my ($ev, $n, @kv) = split / /, $line;
	next unless defined $n && $n =~ /^\d+$/ && $ev ne 'end';
	if ($ev eq 'plan') { $T{$n} = { map { split /=/, $_, 2 } @kv }; }
	else { $T{$n}{$ev} = 1; }
}
my @t_created = sort { $a <=> $b } grep { $T{$_}{created} } keys %T;
# what each must end as: changed after the re-ship, refused here (10060003);
# changed after completion with no reship() that took, needs_reship; else
# uploaded at its version
my $bool = sub { return $_[0] ? 'true' : 'false' };
my $t_values = join(",\n", map {
	my $t = $T{$_};
	my $want = $t->{changed2} ? 'rejected' : $t->{changed} && !$t->{reship_ok} ? 'needs_reship' : 'uploaded';
	sprintf("(%d, '%s', '%s', %s, %s, %s, %s, %s, %s)", -$_, $t->{kind} // '?', $want,
		map { $bool->($t->{$_}) } qw(reship_try reship_ok changed changed2 step2 received))
} @t_created);
{
	my $r = HTTP::Tiny->new(timeout => 120)->get($stub->url . '/__stub/trade/payments');
	die "GET /__stub/trade/payments: $r->{status} $r->{reason}" unless $r->{success};
	open my $out, '>:raw', "$dir/stub_payments.json" or die "$dir/stub_payments.json: $!";
	print $out $r->{content}, "\n";
	close $out or die "$dir/stub_payments.json: $!";
}
sql("CREATE TABLE public.soak_trade_plan (order_id bigint PRIMARY KEY, kind text, want text,
		reship_called boolean, reship_ok boolean, changed boolean, changed2 boolean, step2 boolean,
		received boolean);
	" . (@t_created ? "INSERT INTO public.soak_trade_plan VALUES $t_values;" : '') . "
	CREATE TABLE public.soak_trade_pay_raw (doc jsonb);
	COPY public.soak_trade_pay_raw FROM '$dir/stub_payments.json' WITH (FORMAT csv, DELIMITER E'\\x1f', QUOTE E'\\x1e');
	CREATE TABLE public.soak_trade_pay AS
	SELECT e->>'transaction_id' AS txn, (e->>'uploads_accepted')::int AS accepted,
	       (e->>'reship_used')::boolean AS reship_used, (e->>'receipt_reminder_sent')::boolean AS reminded,
	       e->'last_upload' AS last_upload
	  FROM public.soak_trade_pay_raw, jsonb_array_elements(doc) e;
	CREATE TABLE public.soak_trade_req AS
	SELECT (rec->>'seq')::bigint AS seq, rec->>'path' AS path, (rec->>'body')::jsonb AS body,
	       coalesce((rec->>'body')::jsonb #>> '{order_key,transaction_id}',
	                (rec->>'body')::jsonb->>'transaction_id') AS txn,
	       (rec->>'errcode')::bigint AS errcode, rec->>'fault' AS fault
	  FROM public.soak_requests WHERE rec->>'path' LIKE '/wxa/sec/order/%' AND left(rec->>'body', 1) = '{';
	CREATE TABLE public.soak_trade AS
	SELECT p.*, o.transaction_id AS txn, t.state, coalesce(t.version = t.uploaded_version, false) AS at_version,
	       t.last_errcode, t.last_errmsg, t.finish_count, t.reship_used, t.reship_allowed,
	       t.confirm_notified_at IS NOT NULL AS reminded,
	       coalesce(s.accepted, 0) AS stub_accepted, coalesce(s.reship_used, false) AS stub_reship_used,
	       coalesce(s.reminded, false) AS stub_reminded,
	       coalesce(s.last_upload - 'upload_time'
	                = shopping_upload.build_trade_shipping_payload(p.order_id) - 'upload_time', false) AS stub_has_current,
	       coalesce(q.ok, 0) AS ok_requests, coalesce(q.partial, 0) AS partial_ok
	  FROM public.soak_trade_plan p
	  JOIN shopping_upload.orders o USING (order_id)
	  LEFT JOIN shopping_upload.trade_state t USING (order_id)
	  LEFT JOIN public.soak_trade_pay s ON s.txn = o.transaction_id
	  LEFT JOIN (SELECT txn, count(*) AS ok,
	                    count(*) FILTER (WHERE body->>'delivery_mode' = '2' AND body->>'is_all_delivered' = 'false') AS partial
	               FROM public.soak_trade_req WHERE path = '$TRADE' AND errcode = 0 AND fault IS NULL GROUP BY 1) q
	    ON q.txn = o.transaction_id;
	ANALYZE public.soak_trade, public.soak_trade_req, public.soak_trade_pay;");

# the workload: plans and what was done of them
my ($t_n, $t_kinds, $t_steps, $t_changed, $t_reship_called, $t_reship_ok, $t_reship_unchanged, $t_changed2,
	$t_received) = split /\|/, sql(
	"SELECT count(*), coalesce((SELECT string_agg(kind || ' ' || n, ', ' ORDER BY kind) FROM
		(SELECT kind, count(*) AS n FROM public.soak_trade GROUP BY 1) x), 'none'),
		count(*) FILTER (WHERE step2), count(*) FILTER (WHERE changed),
		count(*) FILTER (WHERE reship_called AND changed), count(*) FILTER (WHERE reship_ok AND changed),
		count(*) FILTER (WHERE reship_called AND NOT changed),
		count(*) FILTER (WHERE changed2), count(*) FILTER (WHERE received)
	   FROM public.soak_trade");
my $t_other = sql("SELECT count(*) FROM shopping_upload.trade_state s
	WHERE NOT EXISTS (SELECT FROM public.soak_trade_plan p WHERE p.order_id = s.order_id)");
# the requests: per path, accepted, refused (by errcode), faulted
my $t_requests = sql("SELECT coalesce(string_agg(x, '; ' ORDER BY x), 'none') FROM
	(SELECT replace(path, '/wxa/sec/order/', '') || ' ' || count(*) || ' (' || count(*) FILTER (WHERE fault IS NOT NULL)
	        || ' faulted; ' || coalesce((SELECT string_agg(e || ' x' || n, ', ' ORDER BY n DESC) FROM
	           (SELECT coalesce(errcode::text, 'none') AS e, count(*) AS n FROM public.soak_trade_req r2
	             WHERE r2.path = r.path AND r2.fault IS NULL GROUP BY 1) y), '') || ')' AS x
	   FROM public.soak_trade_req r GROUP BY path) z");

# 1. no third accepted upload: uploads_accepted of each payment at the
# stand-in at most 2 (a split delivery's steps before its completion
# aside: those are accepted uploads too, and precede the completion)
my ($inv1_max, $inv1_max_plain, $inv1_over, $inv1_over_complete, $inv1_split_steps, $inv1_record_differs, $inv1_examples)
  = split /\|/, sql(
	"SELECT coalesce(max(stub_accepted), 0), coalesce(max(stub_accepted) FILTER (WHERE partial_ok = 0), 0),
		count(*) FILTER (WHERE partial_ok = 0 AND stub_accepted > 2),
		count(*) FILTER (WHERE ok_requests - partial_ok > 2),
		count(*) FILTER (WHERE partial_ok > 0),
		count(*) FILTER (WHERE ok_requests <> stub_accepted),
		coalesce(string_agg(order_id || ' (' || kind || '): ' || stub_accepted || ' accepted, ' || partial_ok
			|| ' of a split not yet complete', '; ') FILTER (WHERE ok_requests - partial_ok > 2
			OR (partial_ok = 0 AND stub_accepted > 2)), '')
	   FROM public.soak_trade");

# 2. no re-ship without reship(): every payment whose re-ship the stand-in
# took is one whose order the driver called reship() for
my ($inv2_used, $inv2_uncalled, $inv2_examples, $inv2_local_differs) = split /\|/, sql(
	"SELECT count(*) FILTER (WHERE s.reship_used),
		count(*) FILTER (WHERE s.reship_used AND NOT coalesce(t.reship_called, false)),
		coalesce(string_agg(s.txn || ' (order ' || coalesce(t.order_id::text, 'none') || ')', '; ')
			FILTER (WHERE s.reship_used AND NOT coalesce(t.reship_called, false)), ''),
		count(*) FILTER (WHERE t.order_id IS NOT NULL AND s.reship_used IS DISTINCT FROM coalesce(t.reship_used, false))
	   FROM public.soak_trade_pay s LEFT JOIN public.soak_trade t USING (txn)");

# 3. how each ends: uploaded at its version, needs_reship (changed after
# completion, no reship()), rejected with a reason (10060003, changed after
# the re-ship); none left waiting
my ($inv3_ends, $inv3_stuck, $inv3_wrong, $inv3_examples) = split /\|/, sql(
	"SELECT coalesce((SELECT string_agg(w || ': ' || n, ', ' ORDER BY w) FROM
		(SELECT want || ' -> ' || coalesce(state, 'no state') || CASE WHEN state = 'rejected'
		        THEN ' ' || coalesce(last_errcode::text, '-') ELSE '' END AS w, count(*) AS n
		   FROM public.soak_trade GROUP BY 1) x), 'none'),
		count(*) FILTER (WHERE state IS NULL OR state IN ('pending', 'uploading', 'retrying', 'waiting_for_payment', 'held')),
		count(*) FILTER (WHERE NOT coalesce(
			   (want = 'uploaded' AND state = 'uploaded' AND at_version)
			OR (want = 'needs_reship' AND state = 'needs_reship')
			OR (want = 'rejected' AND state = 'rejected' AND last_errcode = 10060003 AND coalesce(last_errmsg, '') <> ''),
			false)),
		coalesce((SELECT string_agg(order_id || ' (' || kind || CASE WHEN changed THEN ', changed' ELSE '' END
			|| CASE WHEN reship_called THEN ', reship() ' || CASE WHEN reship_ok THEN 'took' ELSE 'tried' END ELSE '' END
			|| CASE WHEN changed2 THEN ', changed after the re-ship' ELSE '' END || '): want ' || want || ', is '
			|| coalesce(state, 'no state') || ' finish ' || coalesce(finish_count::text, '-') || ' reship_allowed '
			|| coalesce(reship_allowed::text, '-') || ' ' || coalesce(last_errcode::text, '-') || ' '
			|| coalesce(last_errmsg, '') || '; stand-in: '
			|| stub_accepted || ' accepted, re-ship ' || stub_reship_used, E'\\n')
		   FROM (SELECT * FROM public.soak_trade WHERE NOT coalesce(
			   (want = 'uploaded' AND state = 'uploaded' AND at_version)
			OR (want = 'needs_reship' AND state = 'needs_reship')
			OR (want = 'rejected' AND state = 'rejected' AND last_errcode = 10060003 AND coalesce(last_errmsg, '') <> ''),
			false) ORDER BY order_id DESC LIMIT 10) y), '')
	   FROM public.soak_trade");

# 4. no state says uploaded unless the stand-in accepted an upload of that
# payment; uploaded at its version: the body the stand-in kept last is the
# current one
my ($inv4_unaccepted, $inv4_stale, $inv4_examples) = split /\|/, sql(
	"SELECT count(*) FILTER (WHERE (state = 'uploaded' OR finish_count >= 1) AND stub_accepted = 0),
		count(*) FILTER (WHERE state = 'uploaded' AND at_version AND NOT stub_has_current),
		coalesce(string_agg(order_id || ' ' || state || ' finish ' || finish_count || ': ' || stub_accepted
			|| ' accepted at the stand-in, its last body ' || CASE WHEN stub_has_current THEN 'current' ELSE 'not current' END, '; ')
			FILTER (WHERE ((state = 'uploaded' OR finish_count >= 1) AND stub_accepted = 0)
			   OR (state = 'uploaded' AND at_version AND NOT stub_has_current)), '')
	   FROM public.soak_trade");
my ($t_reminders_marked, $t_reminded, $t_reminders_sent) = split /\|/, sql(
	"SELECT count(*) FILTER (WHERE received), count(*) FILTER (WHERE received AND reminded),
		count(*) FILTER (WHERE stub_reminded) FROM public.soak_trade");
my ($overlaps_t, $overlap_pairs_t) = overlaps($TRADE);

my $committed = $w{insert}{tx} + $w{update}{tx} + $w{delete}{tx} + $w{ship}{tx};
my $retries = 0;
$retries += $w{$_}{retries} for qw(insert update delete ship);
my $pgb_deadlocks = 0;
$pgb_deadlocks += $w{$_}{deadlock} for qw(insert update delete ship);
my $pgb_serialization = 0;
$pgb_serialization += $w{$_}{serialization} for qw(insert update delete ship);
my $fmt_counts = sub {
	my ($h) = @_;
	return join(', ', map { "$_ x$h->{$_}" } sort { $h->{$b} <=> $h->{$a} || $a cmp $b } keys %$h) || 'none';
};

diag(join "\n", '',
	'==================== soak figures ====================',
	sprintf('soak: %d s run, worker killed at %s s, a new one %s s later (worker exits in the log: %d); drain %.1f s%s',
		$duration, $killed_at ? sprintf('%.1f', $killed_at - $t0) : 'never',
		$back_at ? sprintf('%.1f', $back_at - $killed_at) : 'never', $worker_exits, $drain_secs,
		$drained ? '' : ' (did not drain)'),
	sprintf('soak: writes committed %d (inserted %d, updated %d, deleted %d, shipping information %d); orders at the end %d',
		$committed, $w{insert}{tx}, $w{update}{tx}, $w{delete}{tx}, $w{ship}{tx}, $n_orders),
	sprintf('soak: uploaded %d, not uploaded %d%s, wrong content %d (never accepted %d, stale %d)',
		$uploaded, $not_uploaded, $by_state ? " ($by_state)" : '', $wrong_content, $never_accepted, $stale),
	sprintf('soak: missing state %d, state of a deleted order %d', $missing_state, $orphans),
	sprintf('soak: duplicates %d (repeat sent by the worker %d, by upload_shopping_info %d, not audited %d)',
		$dups, $dups_worker, $dups_sql, $dups - $dups_worker - $dups_sql),
	sprintf('soak: deadlocks %d, serialization %d (server log); pgbench: %d retries, failures: deadlock %d, serialization %d',
		$log_deadlocks, $log_serialization, $retries, $pgb_deadlocks, $pgb_serialization),
	sprintf('soak: upload_shopping_info calls %d (errcodes: %s), errors %d (%s)',
		$calls + $call_errors, $fmt_counts->(\%upload_calls), $call_errors, $fmt_counts->(\%upload_errors)),
	sprintf('soak: requests at the stand-in %d, accepted %d (%d without an audit row), faults injected %d',
		$stub_stats->{by_path}{'/user-order/orders'} // 0, $accepted, $unaudited, $faults),
	sprintf('soak: shipments stored: with their order %d, later %d (plain SQL %d, import_shipping %d); '
		  . 'tracking_no changes %d; orders with shipping information at the end %d, deleted with theirs %d',
		$ship_with_order, $ship_later + $ship_import, $ship_later, $ship_import, $ship_changes,
		$n_shipped, $ship_deleted),
	sprintf('soak: shipping information uploaded %d, not uploaded %d%s; never accepted %d, wrong shipment %d, '
		  . 'an older payer %d, the log\'s last differs %d; waiting for the order %d, state without shipping information %d',
		$ship_uploaded, $ship_not_uploaded, $ship_by_state ? " ($ship_by_state)" : '', $ship_never, $ship_wrong,
		$ship_payer_old, $ship_log_differs, $ship_waiting, $ship_orphans),
	sprintf('soak: shipping uploads: requests %d, accepted %d, faults %d, refused otherwise %d (%s); '
		  . 'sent before the order was accepted %d, refused for an order not uploaded %d; stale %d',
		$ship_requests, $ship_accepted, $ship_faulted, $ship_refused, $ship_refused_by, $ship_early,
		$ship_refused_not_uploaded, $ship_stale),
	sprintf('soak: verifies: requests %d, accepted %d, faults %d, refused otherwise %d; orders uploaded %d, '
		  . 'verified %d (verify_result: %s), not verified %d, not yet due %d, at an older version %d',
		$verify_requests, $verify_accepted, $verify_faulted, $verify_refused, $n_upl, $verified,
		$verify_results, $unverified, $verify_not_due, $verify_older),
	sprintf('soak: audit: %s; faults by path: %s', $audit_kinds, $faults_by_path // 'none'),
	sprintf('soak: writer runs: %s; clients cut off: %s',
		join(', ', map { "$_ $w{$_}{runs}" } sort keys %w),
		join(', ', map { "$_ $w{$_}{aborted}" } qw(insert update delete ship))),
	'soak: other writer errors: ' . $fmt_counts->(\%writer_errors),
	'soak: server log: ' . $fmt_counts->(\%log_errors),
	'======================================================');

diag(join "\n", '',
	'==================== soak figures: the order shipping management service ====================',
	sprintf('soak: trade orders written %d (%s); split steps completed %d; changed after completion %d, reship() called for %d '
		  . 'of them (took for %d), changed after the re-ship %d; reship() of an unchanged complete shipping %d; signed for %d '
		  . '(reminded %d, the stand-in sent %d reminders); other trade_state rows %d',
		$t_n, $t_kinds, $t_steps, $t_changed, $t_reship_called, $t_reship_ok, $t_changed2, $t_reship_unchanged,
		$t_received, $t_reminded, $t_reminders_sent, $t_other),
	"soak: trade requests at the stand-in: $t_requests",
	sprintf('soak: trade invariant 1 (no third accepted upload): uploads_accepted max %d (%d among payments with no split step '
		  . 'before completion), payments over 2 %d; split steps accepted before completion for %d payments, payments with '
		  . 'more than 2 accepted uploads of a complete shipping %d; record and GET /__stub/trade/payments differ for %d',
		$inv1_max, $inv1_max_plain, $inv1_over, $inv1_split_steps, $inv1_over_complete, $inv1_record_differs),
	sprintf('soak: trade invariant 2 (no re-ship without reship()): re-ships the stand-in took %d, of payments never given reship() %d; '
		  . 'local reship_used differs from the stand-in\'s for %d', $inv2_used, $inv2_uncalled, $inv2_local_differs),
	sprintf('soak: trade invariant 3 (how each ends, want -> is): %s; left waiting %d, not as wanted %d',
		$inv3_ends, $inv3_stuck, $inv3_wrong),
	sprintf('soak: trade invariant 4 (uploaded means accepted at the stand-in): uploaded without an accepted upload %d, '
		  . 'uploaded at its version with another body kept by the stand-in %d', $inv4_unaccepted, $inv4_stale),
	"soak: trade uploads of one payment in flight at once: $overlaps_t ($overlap_pairs_t)",
	'==============================================================================================');
diag("soak: trade shipments not as wanted (first 10):\n$inv3_examples") if $inv3_examples ne '';
diag("soak: payments over the accepted uploads' bound: $inv1_examples") if $inv1_examples ne '';
diag("soak: re-ships without reship(): $inv2_examples") if $inv2_examples ne '';
diag("soak: uploaded, not so at the stand-in: $inv4_examples") if $inv4_examples ne '';

# a few of the bad orders, to start from
my $examples = sql(
	"SELECT 'order ' || f.order_id || ': ' || coalesce(s.state, 'no state')
		|| ' version ' || coalesce(s.version::text, '-') || ' uploaded_version '
		|| coalesce(s.uploaded_version::text, '-') || ' attempts ' || coalesce(s.attempts::text, '-')
		|| ' last_errcode ' || coalesce(s.last_errcode::text, '-')
		|| CASE WHEN s.next_attempt_at IS NULL THEN ''
		        WHEN s.next_attempt_at <= now() THEN ' due since '
		   || round(extract(epoch FROM now() - s.next_attempt_at)::numeric, 1) || ' s'
		   ELSE ' due in ' || round(extract(epoch FROM s.next_attempt_at - now())::numeric, 1) || ' s' END
		|| '; accepted ' || (SELECT count(*) FROM public.soak_sent x WHERE x.okey = f.okey)
		|| CASE WHEN l.seq IS NULL THEN ' (none)' ELSE
		   '; last accepted (seq ' || l.seq || ') quantities '
		   || jsonb_path_query_array(l.content, '\$.order_list[*].item_list[*].quantity')::text
		   || ' openid ' || (l.content #>> '{payer,openid}') END
		|| '; now quantities '
		|| jsonb_path_query_array(f.content, '\$.order_list[*].item_list[*].quantity')::text
		|| ' openid ' || (f.content #>> '{payer,openid}')
	   FROM public.soak_final f
	   LEFT JOIN public.soak_last l USING (okey)
	   LEFT JOIN shopping_upload.order_state s USING (order_id)
	  WHERE l.seq IS NULL OR l.content <> f.content
	     OR NOT coalesce(s.state = 'uploaded' AND s.uploaded_version = s.version, false)
	  ORDER BY f.order_id LIMIT 10");
diag("soak: bad orders (first 10):\n$examples") if $examples ne '';
my $orphan_examples = sql("SELECT string_agg(order_id || ' ' || state, ', ') FROM
	(SELECT s.order_id, s.state FROM shopping_upload.order_state s
	  WHERE NOT EXISTS (SELECT FROM shopping_upload.orders o WHERE o.order_id = s.order_id)
	  ORDER BY s.order_id LIMIT 10) x");
diag("soak: states of deleted orders (first 10): $orphan_examples") if $orphan_examples ne '';
my $ship_examples = sql(
	"SELECT 'order ' || f.order_id || ': shipping ' || coalesce(f.state, 'no state')
		|| ' version ' || coalesce(f.version::text, '-') || ' uploaded_version '
		|| coalesce(f.uploaded_version::text, '-') || ' attempts ' || coalesce(f.attempts::text, '-')
		|| ' last_errcode ' || coalesce(f.last_errcode::text, '-')
		|| coalesce(' (' || f.last_errmsg || ')', '')
		|| CASE WHEN f.next_attempt_at IS NULL THEN ''
		        WHEN f.next_attempt_at <= now() THEN ' due since '
		   || round(extract(epoch FROM now() - f.next_attempt_at)::numeric, 1) || ' s'
		   ELSE ' due in ' || round(extract(epoch FROM f.next_attempt_at - now())::numeric, 1) || ' s' END
		|| '; order ' || coalesce(s.state, 'no state') || ' version ' || coalesce(s.version::text, '-')
		|| ' uploaded_version ' || coalesce(s.uploaded_version::text, '-')
		|| '; tracking_no ' || coalesce(f.tracking_no, '-') || ', kept by the stand-in '
		|| coalesce(k.shipping #>> '{shipping_list,0,tracking_no}', '-')
		|| ' (' || coalesce(k.shippings, 0) || ' accepted)'
	   FROM public.soak_ship_final f
	   LEFT JOIN public.soak_stub_orders k USING (txn)
	   LEFT JOIN shopping_upload.order_state s USING (order_id)
	  WHERE NOT coalesce(f.state = 'uploaded' AND f.uploaded_version = f.version, false)
	     OR k.shipping IS NULL OR k.shipping = 'null'
	     OR k.shipping #>> '{shipping_list,0,tracking_no}' IS DISTINCT FROM f.tracking_no
	     OR k.shipping - 'upload_time' - 'payer' <> f.content - 'payer'
	  ORDER BY row_number() OVER (PARTITION BY f.state ORDER BY f.order_id), f.order_id LIMIT 10");
diag("soak: bad shipping information (first 10, each state in turn):\n$ship_examples") if $ship_examples ne '';
my $ship_req_examples = sql(
	"SELECT 'request ' || s.seq || ' order ' || coalesce(o.order_id::text, 'deleted') || ' (' || s.txn || ')'
		|| ': errcode ' || coalesce(s.errcode::text, '-') || coalesce(' ' || s.errmsg, '')
		|| '; first accepted upload ' || coalesce('request ' || f.seq, 'none')
		|| '; body payer ' || coalesce(s.body #>> '{payer,openid}', '-')
	   FROM public.soak_ship_req s
	   LEFT JOIN public.soak_first_ok f USING (txn)
	   LEFT JOIN shopping_upload.orders o ON o.transaction_id = s.txn
	  WHERE (s.fault IS NULL AND s.errcode IS DISTINCT FROM 0)
	     OR f.seq IS NULL OR f.seq > s.seq
	  ORDER BY s.seq LIMIT 10");
diag("soak: shipping requests sent early or refused (first 10):\n$ship_req_examples") if $ship_req_examples ne '';
my $verify_examples = sql(
	"SELECT string_agg(order_id || ' ' || state || ' uploaded_version ' || uploaded_version
		|| ' verify_version ' || coalesce(verify_version::text, '-') || ' verified_version '
		|| coalesce(verified_version::text, '-') || ' verify_attempts ' || verify_attempts
		|| ' verify_errcode ' || coalesce(verify_errcode::text, '-'), E'\\n') FROM
	(SELECT * FROM shopping_upload.order_state WHERE uploaded_version IS NOT NULL
	    AND ((verified_at IS NULL AND NOT coalesce(verify_due_at > now(), false))
	      OR (verified_at IS NOT NULL AND verify_due_at IS NULL
	          AND verified_version IS DISTINCT FROM uploaded_version))
	  ORDER BY order_id LIMIT 10) x");
diag("soak: orders not verified, or at an older version (first 10):\n$verify_examples") if $verify_examples ne '';

# ---------------------------------------------------------------------
# The run did work
# ---------------------------------------------------------------------

# Per second that a group's runs lasted (the crash and the recovery, which
# take a fixed few seconds, are not the writers' time): a quarter or less of
# each group's pgbench rate, so that a loaded machine still passes, and a
# writer that did not really run does not.
my %ran;
$ran{ $_->{group} } += ($_->{ended} // time) - $_->{started} for @runs;
my %floor = map { $_ => int($ran{$_} // 0) } keys %group;
ok($w{insert}{tx} >= 50 * $floor{insert},
	"at least 50 orders inserted a second of the insert runs' $floor{insert} s ($w{insert}{tx})");
ok($w{update}{tx} >= 10 * $floor{update},
	"at least 10 updates a second of the update runs' $floor{update} s ($w{update}{tx})");
ok($w{delete}{tx} >= $floor{delete},
	"at least 1 delete a second of the delete runs' $floor{delete} s ($w{delete}{tx})");
ok($calls + $call_errors >= 2 * $floor{upload},
	"at least 2 upload_shopping_info() calls made a second of the calling runs' $floor{upload} s "
	  . "($calls answered, $call_errors refused)");
ok($w{ship}{tx} >= 10 * $floor{ship},
	"at least 10 shipping information writes a second of the shipping runs' $floor{ship} s ($w{ship}{tx})");
ok($floor{insert} >= $duration / 2, "the insert runs lasted at least half of the soak ($floor{insert} s of $duration)");
ok($ship_with_order > 0 && $ship_later > 0 && $ship_import > 0 && $ship_changes > 0,
	"shipments stored with their order ($ship_with_order), later by SQL ($ship_later) "
	  . "and import_shipping() ($ship_import), tracking_no changed ($ship_changes)");
ok($ship_deleted > 0, "orders with uploaded shipping information were deleted ($ship_deleted)");
ok($faults > 0, "the stand-in injected faults ($faults)");
ok($ship_faulted > 0 && $verify_faulted > 0,
	"on shipping uploads ($ship_faulted) and verifies ($verify_faulted) too");
ok($killed_pid && $crashed, 'the worker was killed with SIGKILL and the cluster crash-restarted');
ok($back_pid, 'a new worker came back after the crash');
is($invalid, '0', 'orders stay valid (validate_order() of 200 random orders finds nothing)');

# ---------------------------------------------------------------------
# Nothing lost, nothing stale
# ---------------------------------------------------------------------

is($not_uploaded, '0', 'every order is uploaded, at its current version');
is($wrong_content, 0,
	'the last body the stand-in accepted for each order is its current content (upload_time aside)');
is($overlaps, '0', "no order had two requests in flight at once, upload or shipping information, from any process ($workers worker(s))");
is($missing_state, '0', 'every order has a state');
is($orphans, '0', 'no state is left for a deleted order');

# ---------------------------------------------------------------------
# Shipping information: after its order, nothing lost, nothing stale
# ---------------------------------------------------------------------

is($ship_not_uploaded, '0', "every order's shipping information is uploaded, at its current version");
is($ship_never + $ship_wrong, 0,
	"the last shipping body the stand-in accepted for each order carries its current shipment (tracking_no)");
is($ship_waiting, '0', 'no shipping information is left waiting_for_order');
is($ship_orphans, '0', 'no shipping state is left without its shipping information (deleted orders)');
is($ship_early, '0', 'no shipping body was sent before an upload of its order was accepted');
is($ship_refused_not_uploaded, '0', 'no shipping body was refused for an order not uploaded');
is($ship_refused, '0', 'the stand-in refused no shipping body but by an injected fault');
ok($audit_ship_ok > 0, "the audit has accepted kind shipping rows ($audit_ship_ok)");

# ---------------------------------------------------------------------
# Verifies
# ---------------------------------------------------------------------

is($unverified, '0', 'every order whose upload was accepted is verified (verify_delay past)');
is($verify_older, '0', 'at the version accepted last');
is($verify_refused, '0', 'the stand-in refused no verify but by an injected fault');
ok($audit_verify_ok > 0, "the audit has accepted kind verify rows ($audit_verify_ok)");

# ---------------------------------------------------------------------
# The order shipping management service
# ---------------------------------------------------------------------

# a floor on the workload, not a rate: t/015's run of the soak is shorter and
# a loaded machine writes fewer (trixie's CI root wrote 18)
ok($t_n >= 10 && $t_steps > 0 && $t_changed > 0 && $t_reship_ok > 0 && $t_changed2 > 0,
	"the trade driver wrote shipments for the service ($t_n: $t_kinds), completed split steps ($t_steps), "
	  . "changed them after completion ($t_changed), re-shipped ($t_reship_ok), changed them after the re-ship ($t_changed2)");
is($inv1_over, '0',
	"no payment got a third accepted upload at the stand-in, a split delivery's steps before completion aside "
	  . "(uploads_accepted at most 2: max $inv1_max_plain; $inv1_max with the steps)");
is($inv1_over_complete, '0',
	'nor more than two accepted uploads of a complete shipping (the completion and the one re-ship), a split delivery\'s steps aside');
is($inv2_uncalled, '0', "no re-ship reached the stand-in without reship() ($inv2_used re-ships taken)");
is($inv3_stuck, '0', 'no trade shipment is left pending, uploading, retrying or waiting_for_payment after the drain');
is($inv3_wrong, '0',
	'each trade shipment ends uploaded at its version, needs_reship (changed after completion, no reship()), '
	  . "or rejected with 10060003 and a reason (changed after the re-ship): $inv3_ends");
is($inv4_unaccepted, '0', 'no trade state says uploaded unless the stand-in accepted an upload of that payment');
is($inv4_stale, '0', 'one uploaded at its version is the body the stand-in accepted last (upload_time aside)');
is($overlaps_t, '0', 'no payment had two uploads to the service in flight at once');

done_testing();
