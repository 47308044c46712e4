# SuStub: the stand-in WeChat server (test/wechat_stub.py) for TAP tests,
# and helpers to set up a cluster with shopping_upload.
#
#   my $stub = SuStub->start(tls => 1, dir => $dir);
#   SuStub->start(log => $file);        # also every record to $file, JSON lines
#   $stub->url;                         # http(s)://127.0.0.1:PORT
#   $stub->fault(kind => 'errcode:-1', count => 2);
#   $stub->requests('/user-order/orders');   # array of records
#   $stub->stats; $stub->reset; $stub->stop;
#   $stub->reset(tokens => 1, orders => 1);  # also drop tokens / remembered orders
#   $stub->orders;                      # the orders the stub accepted (array)
#   $stub->verify_result(linked => 'L', unlinked => 'U');   # verify's answers
#   $stub->verify_result(order_key => {...}, verify_result => 'V');  # one order's
#   $stub->verify_result;               # the current settings
#   $stub->token_requests('wxtestappid');   # its stable_token records
#   SuStub::node(conf => ..., initdb => [ '--encoding=UTF8', '--locale=C' ]);
#   SuStub::rss_anon_kb($pid);          # RssAnon of a process, kB
#   SuStub::poll_until($node, $db, $query, $want, $secs);  # bounded wait
#
# Stubs still running when the test ends are stopped (END block).
package SuStub;

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Spec;
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep);

our $srcdir = File::Spec->rel2abs(dirname(__FILE__) . '/..');
my @running;
my $json = JSON::PP->new->utf8->canonical;

# Makes a throwaway CA and a server certificate for 127.0.0.1/localhost.
sub make_ca
{
	my ($dir) = @_;
	system('bash', "$srcdir/test/make_test_ca.sh", $dir) == 0
	  or die "make_test_ca.sh failed";
	return $dir;
}

sub start
{
	my ($class, %opt) = @_;
	my $dir = $opt{dir} // PostgreSQL::Test::Utils::tempdir();
	my $name = $opt{name} // ($opt{tls} ? 'stub_tls' : 'stub');
	my $portfile = "$dir/$name.port";
	my @cmd = ('python3', "$srcdir/test/wechat_stub.py", '--port', '0',
		'--port-file', $portfile, '--seed', '1');
	push @cmd, '--accounts', $opt{accounts} if $opt{accounts};
	push @cmd, '--token-ttl', $opt{token_ttl} if $opt{token_ttl};
	push @cmd, '--log', $opt{log} if $opt{log};
	push @cmd, '--tls-cert', "$opt{ca}/server.crt", '--tls-key',
	  "$opt{ca}/server.key"
	  if $opt{tls};
	unlink $portfile;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(\@cmd, '<', \undef, '>', \$out, '2>', \$err);
	my $waited = 0;
	until (-s $portfile)
	{
		die "stub did not start: $err" if $waited++ > 300 || !$h->pumpable;
		usleep(50_000);
	}
	my $port = PostgreSQL::Test::Utils::slurp_file($portfile);
	chomp $port;
	my $self = bless {
		h => $h,
		port => $port,
		scheme => $opt{tls} ? 'https' : 'http',
		http => HTTP::Tiny->new(timeout => 30),
		out => \$out,
		err => \$err,
	}, $class;
	push @running, $self;
	return $self;
}

sub port { $_[0]->{port} }
sub url { "$_[0]->{scheme}://127.0.0.1:$_[0]->{port}" }

# control API (always plain HTTP on the stub's port? no: same scheme)
sub _control
{
	my ($self, $method, $path, $body) = @_;
	my $url = $self->url . $path;
	my %args;
	if (defined $body)
	{
		$args{content} = $json->encode($body);
		$args{headers} = { 'Content-Type' => 'application/json' };
	}
	my $http = $self->{scheme} eq 'https'
	  ? HTTP::Tiny->new(timeout => 30, verify_SSL => 0)
	  : $self->{http};
	my $r = $http->request($method, $url, \%args);
	die "stub control $path failed: $r->{status} $r->{content}"
	  unless $r->{success};
	return $json->decode($r->{content});
}

sub fault { my ($self, %f) = @_; return $self->_control('POST', '/__stub/fault', \%f); }
sub clear_faults { $_[0]->_control('POST', '/__stub/faults/clear', {}) }
sub stats { $_[0]->_control('GET', '/__stub/stats') }
sub tokens { $_[0]->_control('GET', '/__stub/tokens') }

# the stub takes only JSON true for tokens/orders: true Perl values become it
sub reset
{
	my ($self, %opt) = @_;
	$_ = $_ ? JSON::PP::true : JSON::PP::false for values %opt;
	return $self->_control('POST', '/__stub/reset', \%opt);
}

sub orders { $_[0]->_control('GET', '/__stub/orders') }

# without arguments the settings; with them, sets them (see the stub's
# docstring: linked, unlinked; order_key with verify_result, undef to remove)
sub verify_result
{
	my ($self, %v) = @_;
	return $self->_control('GET', '/__stub/verify_result') unless %v;
	return $self->_control('POST', '/__stub/verify_result', \%v);
}

sub requests
{
	my ($self, $path) = @_;
	return $self->_control('GET',
		'/__stub/requests' . (defined $path ? "?path=$path" : ''));
}

# the stable_token records of one appid (all of them without one)
sub token_requests
{
	my ($self, $appid) = @_;
	my @r = @{ $self->requests('/cgi-bin/stable_token') };
	return [@r] unless defined $appid;
	return [
		grep {
			my $b = eval { $json->decode($_->{body}) };
			ref $b eq 'HASH' && ($b->{appid} // '') eq $appid
		} @r
	];
}

sub decode { $json->decode($_[1]) }
sub encode { $json->encode($_[1]) }

sub stop
{
	my ($self) = @_;
	return unless $self->{h};
	$self->{h}->signal('TERM');
	$self->{h}->finish;
	$self->{h} = undef;
}

END
{
	$_->stop for @running;
}

# A started node with the library preloaded and the extension created;
# extra lines of configuration in %opt{conf}; extra initdb options in
# %opt{initdb} (an array).  Plain http to the stand-in is
# allowed (shopping_upload.allow_insecure_http); a secret given as
# "shopping_upload.secret = '...'" is written to a file only the server's
# user can read, named by shopping_upload.secret_file.
sub node
{
	my (%opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($opt{name} // 'main');
	my $conf = $opt{conf} // '';
	$node->init($opt{initdb} ? (extra => $opt{initdb}) : ());

	# The secret cannot be set in postgresql.conf (PostgreSQL logs changed
	# values): a "shopping_upload.secret = '...'" line becomes a secret file.
	if ($conf =~ s/^shopping_upload\.secret\s*=\s*'([^']*)'[^\n]*$/shopping_upload.secret_file = '__SECRET_FILE__'/m)
	{
		my $file = $node->basedir . '/app_secret';
		PostgreSQL::Test::Utils::append_to_file($file, "$1\n");
		chmod 0600, $file;
		$conf =~ s/__SECRET_FILE__/$file/;
	}
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'shopping_upload'\n"
		  . "listen_addresses = ''\n"
		  . "shopping_upload.allow_insecure_http = on\n"
		  # the shipping management service only where a test asks for it
		  . "shopping_upload.trade_managed = off\n"
		  . $conf);
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION shopping_upload');
	return $node;
}

# RssAnon of a process in kB (its private memory), from /proc/PID/status;
# undef when it cannot be read
sub rss_anon_kb
{
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/status" or return undef;
	while (my $l = <$fh>)
	{
		return $1 if $l =~ /^RssAnon:\s+(\d+)\s+kB/;
	}
	return undef;
}

# polls $query in $db until it returns $want, for at most $secs seconds
# (poll_query_until waits minutes); true if it did
sub poll_until
{
	my ($node, $db, $query, $want, $secs) = @_;
	my $end = Time::HiRes::time() + $secs;
	while (1)
	{
		my $v = $node->safe_psql($db, $query);
		return 1 if $v eq $want;
		return 0 if Time::HiRes::time() > $end;
		usleep(50_000);
	}
}

# a valid demo order as JSON text; %o overrides: out_trade_no, appid
sub order_json
{
	my (%o) = @_;
	my $appid = $o{appid} // 'wxtestappid';
	my $no = $o{out_trade_no} // 'DEMO_000001';
	my $items = $o{items} // 3;
	my @items = map {
		{
			merchant_item_id => "sku-$_",
			name => "商品 $_",
			unit_price => 100 * $_,
			quantity => 1,
			image_url => ["https://img.example.com/$_.png"],
			item_detail_jump_link => {
				type => 'MINI_PROGRAM',
				appid => $appid,
				path => "/pages/item?sku=$_"
			}
		}
	} 1 .. $items;
	return $json->encode(
		{
			order_key => {
				order_number_type => 1,
				mchid => '1230000109',
				out_trade_no => $no
			},
			order_list => [
				{
					merchant_order_no => "$no-1",
					order_detail_jump_link => {
						type => 'MINI_PROGRAM',
						appid => $appid,
						path => "/pages/order?no=$no"
					},
					item_list => \@items
				}
			],
			payer => { openid => 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' },
			logistics_type => 1
		});
}

1;
